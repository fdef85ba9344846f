//! Process watches: a pidfd per watched process, readable once the process
//! has exited (zombies included), in the watcher's epoll set. A pid file is
//! re-read whenever it is rewritten (inotify on its directory, see
//! [`super::inotify`]), and the watch re-armed on the new process.
//!
//! pidfd_open comes from rustix's safe wrapper (nix 0.30 has none): no
//! `unsafe` in exaprobe.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::model::watch::Process;

/// Longest pid file read: a pid and a newline, with room to spare.
const PID_FILE_MAX: u64 = 64;

/// One watched process.
#[derive(Debug)]
pub(super) struct ProcWatch {
    /// Its service.
    pub(super) service: String,
    /// Where the pid comes from.
    pub(super) source: Process,
    /// The pidfd and pid while armed.
    pub(super) armed: Option<(OwnedFd, u32)>,
    /// The pid that was seen to exit last: a pid file still naming it is
    /// stale, and is not re-armed on.
    pub(super) exited: Option<u32>,
    /// The generation in the epoll token of the armed pidfd.
    pub(super) generation: u32,
}

impl ProcWatch {
    pub(super) fn new(service: String, source: Process) -> Self {
        ProcWatch { service, source, armed: None, exited: None, generation: 0 }
    }

    /// What is watched, for status.
    pub(super) fn label(&self) -> String {
        label(&self.source)
    }

    /// The pid the source names now.
    fn current_pid(&self) -> Result<u32, String> {
        match &self.source {
            Process::Pid(p) => Ok(p.get()),
            Process::PidFile(path) => read_pid(path),
        }
    }

    /// Arms the watch on the pid its source names, unless it is armed on
    /// that pid already or that pid already exited. `Ok(true)`: newly armed
    /// (the caller adds the fd to its epoll set).
    pub(super) fn arm(&mut self) -> Result<bool, String> {
        let pid = self.current_pid()?;
        if self.armed.as_ref().is_some_and(|(_, p)| *p == pid) {
            return Ok(false);
        }
        if self.exited == Some(pid) {
            return Err(match self.source {
                Process::Pid(_) => format!("process {pid} exited (a fixed pid is not re-armed)"),
                Process::PidFile(_) => format!("process {pid} exited; waiting for the pid file to name a new one"),
            });
        }
        self.armed = None;
        let fd = open(pid)?;
        // The pidfd holds this very process from now on: check that it is
        // the one the pid file was written for.
        if let Process::PidFile(path) = &self.source {
            not_recycled(path, pid)?;
        }
        self.armed = Some((fd, pid));
        Ok(true)
    }

    /// The armed process exited: its pid.
    pub(super) fn exited(&mut self) -> Option<u32> {
        let (_, pid) = self.armed.take()?;
        self.exited = Some(pid);
        Some(pid)
    }
}

/// What a process watch is called in `status`.
pub(super) fn label(source: &Process) -> String {
    match source {
        Process::PidFile(p) => format!("pid-file {}", p.display()),
        Process::Pid(p) => format!("pid {p}"),
    }
}

fn open(pid: u32) -> Result<OwnedFd, String> {
    let raw = i32::try_from(pid).ok().and_then(Pid::from_raw).ok_or(format!("{pid} is not a process id"))?;
    pidfd_open(raw, PidfdFlags::empty()).map_err(|e| match e {
        rustix::io::Errno::SRCH => format!("no process {pid}"),
        rustix::io::Errno::NOSYS => "no pidfd support in this kernel (Linux 5.3 or later)".to_string(),
        rustix::io::Errno::MFILE | rustix::io::Errno::NFILE => format!("pidfd of {pid}: too many open files"),
        e => format!("pidfd of {pid}: {e}"),
    })
}

/// Ticks per second of `/proc/<pid>/stat`'s start time: Linux's USER_HZ,
/// part of its ABI, 100 on every architecture exaprobe is built for.
const USER_HZ: u64 = 100;

/// Slack for the start time computed from `/proc` (the boot time there is
/// in whole seconds) and for a pid file written by a parent just before
/// its child started.
const START_SLACK: Duration = Duration::from_secs(2);

/// A pid read from a pid file may be recycled: the service died, and
/// another process got its number. With the pidfd open, the process must
/// have started no later than the pid file was written, and the file must
/// still name it; otherwise it is not the service.
fn not_recycled(path: &Path, pid: u32) -> Result<(), String> {
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).map_err(|e| super::describe(&e))?;
    if read_pid(path)? != pid {
        return Err("the pid file changed meanwhile".to_string());
    }
    // Where /proc cannot tell (hidepid, no /proc), the pid is trusted.
    let Some(started) = start_time(pid) else { return Ok(()) };
    if started > mtime + START_SLACK {
        return Err(format!(
            "process {pid} started after the pid file was written: a recycled pid, not the service \
             (waiting for the pid file to name a live one)"
        ));
    }
    Ok(())
}

/// When process `pid` started: the boot time (`btime` of /proc/stat) plus
/// its start time in ticks (field 22 of /proc/<pid>/stat).
fn start_time(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything.
    let after = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let since_boot = Duration::from_secs(ticks / USER_HZ) + Duration::from_millis(ticks % USER_HZ * 1000 / USER_HZ);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + since_boot)
}

/// The pid in a pid file: its first word, a positive number.
pub(super) fn read_pid(path: &Path) -> Result<u32, String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(PID_FILE_MAX).read_to_string(&mut text))
        .map_err(|e| super::describe(&e))?;
    let word = text.split_whitespace().next().unwrap_or("");
    word.parse::<u32>().ok().filter(|p| *p > 0).ok_or_else(|| format!("no pid in the file ({word:?})"))
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

    use super::*;

    #[test]
    fn a_pidfd_is_readable_when_the_process_exits_and_not_before() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = NonZeroU32::new(child.id()).unwrap();
        let mut w = ProcWatch::new("t".into(), Process::Pid(pid));
        assert_eq!(w.arm(), Ok(true));
        assert_eq!(w.arm(), Ok(false), "armed already");
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        epoll.add(&w.armed.as_ref().unwrap().0, EpollEvent::new(EpollFlags::EPOLLIN, 7)).unwrap();
        let mut evs = [EpollEvent::empty(); 4];
        assert_eq!(epoll.wait(&mut evs, EpollTimeout::ZERO).unwrap(), 0, "alive: not readable");
        child.kill().unwrap();
        // Not reaped yet: a zombie has exited too.
        let n = epoll.wait(&mut evs, EpollTimeout::try_from(Duration::from_secs(5)).unwrap()).unwrap();
        assert_eq!((n, evs[0].data()), (1, 7));
        assert_eq!(w.exited(), Some(pid.get()));
        child.wait().unwrap();
        assert!(w.arm().unwrap_err().contains("not re-armed"));
    }

    #[test]
    fn a_pid_file_naming_a_process_started_after_it_was_written_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.pid");
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&f, format!("{}\n", child.id())).unwrap();
        let mut w = ProcWatch::new("t".into(), Process::PidFile(f.clone()));
        // Written after the process started: the service.
        assert_eq!(w.arm(), Ok(true));
        // Written an hour before the process started: a recycled pid.
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(hour_ago).unwrap();
        let mut w = ProcWatch::new("t".into(), Process::PidFile(f.clone()));
        let e = w.arm().unwrap_err();
        assert!(e.contains("a recycled pid"), "{e}");
        assert!(w.armed.is_none());
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn start_times_come_from_proc() {
        let t = start_time(std::process::id()).unwrap();
        let now = SystemTime::now();
        assert!(t <= now + START_SLACK && t > now - Duration::from_secs(3600), "{t:?} {now:?}");
    }

    #[test]
    fn pid_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.pid");
        assert!(read_pid(&f).unwrap_err().contains("no such file"), "{:?}", read_pid(&f));
        std::fs::write(&f, "1234\n").unwrap();
        assert_eq!(read_pid(&f), Ok(1234));
        std::fs::write(&f, "nope").unwrap();
        assert!(read_pid(&f).unwrap_err().contains("no pid"));
        std::fs::write(&f, "0").unwrap();
        assert!(read_pid(&f).is_err());
    }
}
