//! Real servers for the tests and benchmarks that probe them: nginx,
//! chronyd, NSD, Knot and Unbound, each started as the current user in the
//! foreground on a loopback address or port of its own, with its
//! configuration and logs in a temporary directory, and stopped by PID when
//! dropped; certificates made with `openssl`; the referees (`curl`, `dig`,
//! `kdig`, `chronyc`, the Monitoring Plugins) found on the PATH. One module
//! per server; this one holds what they share: tool lookup, loopback
//! addresses and free ports, commands, and the server process.
//!
//! A missing binary skips the test that needs it, with a message, except
//! under `CI=true`, where it fails the test: CI installs everything
//! (`scripts/install-deps`), so a skip there would hide a gap.
//!
//! Used by tests/real_http_ntp.rs, tests/real_dns.rs, benches/latency.rs
//! and benches/real_dns.rs (the benches through `#[path]`).

#![allow(dead_code, unused_imports, reason = "each test file uses part of the helpers")]

mod chrony;
mod dig;
mod dns;
mod knot;
mod nginx;
mod nsd;
mod pki;
mod unbound;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub(crate) use chrony::{Chrony, ntp_answers};
pub(crate) use dig::Dig;
pub(crate) use dns::{answers, zone};
pub(crate) use knot::knot;
pub(crate) use nginx::{Nginx, nginx_doh};
pub(crate) use nsd::{Nsd, nsd};
pub(crate) use pki::{NAME, Pki, certificate};
pub(crate) use unbound::unbound;

/// Directories searched for server binaries and plugins after the PATH.
const EXTRA_DIRS: [&str; 5] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/lib/nagios/plugins"];

/// The longest a server gets to start answering.
const START: Duration = Duration::from_secs(15);

/// The longest a server gets to exit after SIGTERM before SIGKILL.
const STOP: Duration = Duration::from_secs(5);

/// Whether this is CI (`CI=true`), where a missing tool fails the test.
fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The path of `name`, or `None` (after saying so) when it is not
/// installed. Panics under `CI=true`.
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(!ci(), "{name} is not installed, and CI=true: scripts/install-deps installs it");
        eprintln!("SKIP: {name} is not installed (scripts/install-deps installs it)");
    }
    // Debian's chronyd refuses to start unless root ("Not superuser"), -x
    // or not; run as root, it is then told to stay so (see Chrony::start).
    if name == "chronyd" && found.is_some() && !nix::unistd::geteuid().is_root() {
        assert!(!ci(), "chronyd runs only as root, and CI=true: run the suite as root (as the e2e tests need too)");
        eprintln!("SKIP: chronyd runs only as root");
        return None;
    }
    found
}

/// All of `names`, or `None` if one is missing (each missing one said).
pub(crate) fn tools<const N: usize>(names: [&str; N]) -> Option<[PathBuf; N]> {
    let found: Vec<Option<PathBuf>> = names.iter().map(|n| tool(n)).collect();
    if found.iter().any(Option::is_none) {
        return None;
    }
    Some(std::array::from_fn(|i| found[i].clone().unwrap_or_default()))
}

/// A random address in 127.0.0.0/8 (not 127.0.0.1), so that parallel tests
/// and other programs on the host do not meet.
pub(crate) fn loopback() -> Ipv4Addr {
    let mut b = [0u8; 3];
    getrandom::getrandom(&mut b).expect("randomness");
    Ipv4Addr::new(127, b[0].max(1), b[1], b[2].clamp(2, 254))
}

/// A port free on `ip` for TCP (and UDP when `udp`) just now, from the
/// kernel's ephemeral range, and not handed out before by this process (a
/// server started later binds it, so the kernel could offer it again
/// meanwhile).
pub(crate) fn free_port(ip: Ipv4Addr, udp: bool) -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    for _ in 0..50 {
        let port = TcpListener::bind((ip, 0)).expect("bind").local_addr().expect("addr").port();
        let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) && (!udp || UdpSocket::bind((ip, port)).is_ok()) {
            given.push(port);
            return port;
        }
    }
    panic!("no free port on {ip}");
}

/// A port free on 127.0.0.1 for both UDP and TCP: the DNS servers'
/// address (their configurations name 127.0.0.1).
pub(crate) fn local_port() -> u16 {
    free_port(Ipv4Addr::LOCALHOST, true)
}

/// Runs a command to completion, with its output.
pub(crate) fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{program:?}: {e}"))
}

/// Runs a command that must succeed.
pub(crate) fn run_ok(program: &Path, args: &[&str]) -> Output {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program:?} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub(crate) fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
    path.display().to_string()
}

/// The name of the user running the tests.
fn current_user() -> String {
    let out = run(Path::new("/usr/bin/id"), &["-un"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A server process, stopped by its PID (SIGTERM, then SIGKILL) and reaped
/// when dropped.
pub(crate) struct Server {
    child: Child,
    name: &'static str,
    log: PathBuf,
    /// The address it was started for (UDP and TCP, unless its config says
    /// otherwise; the first of several).
    pub(crate) addr: SocketAddr,
}

impl Server {
    /// Starts `program` with `args`, its output in `log`, and waits (at most
    /// [`START`]) until `ready` says yes, failing with the log if it does
    /// not or the server exits.
    pub(crate) fn start(
        name: &'static str,
        program: &Path,
        args: &[&str],
        log: PathBuf,
        addr: SocketAddr,
        mut ready: impl FnMut() -> bool,
    ) -> Server {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{program:?}: {e}"));
        let mut server = Server { child, name, log, addr };
        let until = Instant::now() + START;
        while !ready() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{name} exited ({status}) before answering:\n{}", server.log());
            }
            assert!(Instant::now() < until, "{name} not ready after {START:?}:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Starts any server that listens on TCP `addr`, and waits until it
    /// accepts connections.
    pub(crate) fn start_tcp(
        name: &'static str,
        program: &Path,
        args: &[&str],
        log: PathBuf,
        addr: SocketAddr,
    ) -> Server {
        Server::start(name, program, args, log, addr, || TcpStream::connect(addr).is_ok())
    }

    /// The server's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it now.
    pub(crate) fn stop(self) {
        drop(self);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STOP;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
