//! Harness for the end-to-end tests: a real BGP peer (BIRD 2 or FRR's bgpd,
//! RIB-only: see [`Router`]), a real ExaBGP (4.2 or 5.0) whose `process` stanza
//! runs exaprobe, and a loopback TCP service that a test can stop and start again.
//!
//! Safety rules this harness keeps (the development hosts use 192.0.2.0/24 and
//! fd00::/64 for their own network):
//! - nothing is configured on the host: every address is in 127.0.0.0/8, which
//!   Linux answers on `lo` without any setup; BIRD has no `protocol kernel` and
//!   FRR's bgpd runs without zebra and with `bgp no-rib`, so no route ever
//!   reaches a kernel table (checked each time a route is seen); route payloads
//!   are 198.51.100.0/24 and 2001:db8::/32 only; `--no-ip-setup` is always passed;
//! - every process is started here and stopped by its recorded PID, after
//!   checking `/proc/PID/cmdline` (and its start time), never by name;
//! - each harness gets its own /24 inside 127.0.0.0/8 and its own run directory,
//!   so tests can run in parallel.
//!
//! Environment:
//! - `EXAPROBE_EXABGP4` / `EXAPROBE_EXABGP5`: the `exabgp` executables (printed
//!   by `scripts/install-deps`);
//! - `EXAPROBE_E2E_PROCESS=healthcheck`: run ExaBGP's bundled healthcheck
//!   instead of exaprobe (the reference the harness was validated against);
//! - `EXAPROBE_E2E_TIMINGS=FILE`: append measured delays to FILE;
//! - `EXAPROBE_E2E_KEEP=1`: keep run directories (they are always kept, and
//!   their logs printed, when a test fails).

/// Declares a scenario and its tests, one per ExaBGP version (and router):
/// - `fn name(v: Version)`: against BIRD, tests `name::exabgp4` and `name::exabgp5`;
/// - `fn name(v: Version, r: Router)`: against BIRD as above, and against FRR as
///   `name::frr_exabgp4` and `name::frr_exabgp5`;
/// - `frr_only; fn name(v: Version, r: Router)`: the FRR tests only (for what
///   another BIRD scenario already covers).
macro_rules! e2e {
    (@frr $name:ident) => {
        #[test]
        #[ignore = "needs ExaBGP and FRR: run scripts/test"]
        fn frr_exabgp4() {
            super::$name(super::Version::V4, super::Router::Frr)
        }

        #[test]
        #[ignore = "needs ExaBGP and FRR: run scripts/test"]
        fn frr_exabgp5() {
            super::$name(super::Version::V5, super::Router::Frr)
        }
    };
    ($(#[doc = $doc:literal])* fn $name:ident($v:ident: Version, $r:ident: Router) $body:block) => {
        $(#[doc = $doc])*
        fn $name($v: Version, $r: Router) $body

        mod $name {
            #[test]
            #[ignore = "needs ExaBGP and BIRD: run scripts/test"]
            fn exabgp4() {
                super::$name(super::Version::V4, super::Router::Bird)
            }

            #[test]
            #[ignore = "needs ExaBGP and BIRD: run scripts/test"]
            fn exabgp5() {
                super::$name(super::Version::V5, super::Router::Bird)
            }

            e2e!(@frr $name);
        }
    };
    (frr_only; $(#[doc = $doc:literal])* fn $name:ident($v:ident: Version, $r:ident: Router) $body:block) => {
        $(#[doc = $doc])*
        fn $name($v: Version, $r: Router) $body

        mod $name {
            e2e!(@frr $name);
        }
    };
    ($(#[doc = $doc:literal])* fn $name:ident($v:ident: Version) $body:block) => {
        $(#[doc = $doc])*
        fn $name($v: Version) $body

        mod $name {
            #[test]
            #[ignore = "needs ExaBGP and BIRD: run scripts/test"]
            fn exabgp4() {
                super::$name(super::Version::V4)
            }

            #[test]
            #[ignore = "needs ExaBGP and BIRD: run scripts/test"]
            fn exabgp5() {
                super::$name(super::Version::V5)
            }
        }
    };
}

/// The IPv4 route payload of the scenarios.
pub(crate) const V4_PREFIX: &str = "198.51.100.1/32";

/// Upper bound for a check's failure to show in BIRD with the fast timing
/// (`interval 1, fast-interval 0.5, fall 2`): fall × fast-interval + interval + 2 s.
pub(crate) const DOWN_BOUND: f64 = 2.0 * 0.5 + 1.0 + 2.0;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{ErrorKind, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub(crate) mod frr;

/// The BGP peer ExaBGP announces to. Both are RIB-only and listen only on the
/// harness's own loopback address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Router {
    /// BIRD 2, read with `birdc show route all`.
    Bird,
    /// FRR's bgpd alone (no zebra), read with vtysh's JSON (see [`frr`]).
    Frr,
}

impl Router {
    /// Short label used in messages and timing lines.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Router::Bird => "bird",
            Router::Frr => "frr",
        }
    }
}

/// The peer's BGP port (above 1024, away from other BGP tests on the host).
pub(crate) const BGP_PORT: u16 = 17901;
/// Port of the loopback test service.
pub(crate) const SERVICE_PORT: u16 = 18080;
/// How often the peer's RIB is polled.
const POLL: Duration = Duration::from_millis(20);
/// Name of the environment variable that marks every process of one harness.
const MARKER_VAR: &str = "EXAPROBE_E2E_RUN";

/// A pseudo-random duration in `[0, max)`, to vary the phase of an event
/// against the probe schedule (so measured delays cover the whole range).
pub(crate) fn random_phase(max: Duration) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    let fraction = (hasher.finish() % 1_000_000) as f64 / 1_000_000.0;
    max.mul_f64(fraction)
}

/// Shorthand for a duration in (possibly fractional) seconds.
pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The ExaBGP release line under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// ExaBGP 4.2.x (4.2.25).
    V4,
    /// ExaBGP 5.0.x (5.0.15).
    V5,
}

impl Version {
    fn env_var(self) -> &'static str {
        match self {
            Version::V4 => "EXAPROBE_EXABGP4",
            Version::V5 => "EXAPROBE_EXABGP5",
        }
    }

    /// Short label used in messages and timing lines.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Version::V4 => "exabgp-4.2",
            Version::V5 => "exabgp-5.0",
        }
    }

    /// The `exabgp` executable, from the environment; panics with a clear
    /// message when it is not configured.
    pub(crate) fn exabgp(self) -> PathBuf {
        let var = self.env_var();
        let value = std::env::var_os(var).unwrap_or_else(|| {
            panic!(
                "{var} is not set: the end-to-end tests need ExaBGP ({}). \
                 Run them with scripts/test, or: eval \"$(scripts/install-deps)\"; \
                 export EXAPROBE_EXABGP4 EXAPROBE_EXABGP5",
                self.label()
            )
        });
        let path = PathBuf::from(value);
        assert!(is_executable(&path), "{var}={} is not an executable file (run scripts/install-deps)", path.display());
        path
    }

    /// The command that checks a config file without starting anything.
    pub(crate) fn validate_command(self, conf: &Path) -> Command {
        let mut cmd = Command::new(self.exabgp());
        match self {
            Version::V4 => cmd.arg("--test").arg(conf),
            Version::V5 => cmd.arg("validate").arg(conf),
        };
        cmd.env("exabgp_daemon_user", "root")
            .env("exabgp_api_cli", "false")
            .env("exabgp_log_destination", "stdout")
            .stdin(Stdio::null());
        cmd
    }
}

/// Which program ExaBGP runs as its API process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// The exaprobe binary under test (the default).
    Exaprobe,
    /// ExaBGP's bundled `python -m exabgp healthcheck`, the reference
    /// (`EXAPROBE_E2E_PROCESS=healthcheck`).
    Healthcheck,
}

impl Flavor {
    fn from_env() -> Flavor {
        match std::env::var("EXAPROBE_E2E_PROCESS").as_deref() {
            Err(_) | Ok("") | Ok("exaprobe") => Flavor::Exaprobe,
            Ok("healthcheck") => Flavor::Healthcheck,
            Ok(other) => panic!("EXAPROBE_E2E_PROCESS={other}: expected exaprobe or healthcheck"),
        }
    }
}

/// The exaprobe binary built by cargo for this test run.
pub(crate) fn exaprobe_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_exaprobe"))
}

/// Options of the generated ExaBGP config and environment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExaOptions {
    /// `respawn` in the process stanza (ExaBGP's default is true).
    pub(crate) respawn: bool,
    /// `exabgp_api_ack`.
    pub(crate) ack: bool,
}

impl Default for ExaOptions {
    fn default() -> Self {
        ExaOptions { respawn: true, ack: true }
    }
}

/// One path of one prefix in the peer's RIB: from `birdc show route all`, or
/// from FRR's JSON, in the same (BIRD's) notation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Route {
    /// The prefix, as BIRD prints it (`198.51.100.1/32`).
    pub(crate) prefix: String,
    /// The protocol that supplied the path (`exa`; FRR: the peer's address).
    pub(crate) protocol: String,
    /// Whether this is the best path (`*`).
    pub(crate) best: bool,
    /// `BGP.next_hop` (for IPv6 possibly followed by a link-local address).
    pub(crate) next_hop: Option<String>,
    /// `BGP.med`.
    pub(crate) med: Option<u32>,
    /// `BGP.local_pref` (FRR: `localpref`, absent on eBGP paths).
    pub(crate) local_pref: Option<u32>,
    /// `BGP.as_path`.
    pub(crate) as_path: Option<String>,
    /// `BGP.community`, as BIRD prints it (`(65000,1) (65000,2)`; FRR's
    /// `65000:1 65000:2` is rewritten to that form).
    pub(crate) community: Option<String>,
}

fn is_prefix(s: &str) -> bool {
    s.split_once('/').is_some_and(|(addr, len)| addr.parse::<std::net::IpAddr>().is_ok() && len.parse::<u8>().is_ok())
}

fn path_line(prefix: &str, rest: &str) -> Route {
    // rest: `unreachable [exa 03:43:34.961 from 127.66.1.2] * (100) [AS65001i]`
    let (protocol, after) = match rest.split_once('[') {
        Some((_, inner)) => {
            let protocol = inner.split(|c: char| c.is_whitespace() || c == ']').next().unwrap_or_default();
            let after = inner.split_once(']').map(|(_, a)| a).unwrap_or_default();
            (protocol.to_owned(), after)
        }
        None => (String::new(), ""),
    };
    Route { prefix: prefix.to_owned(), protocol, best: after.trim_start().starts_with('*'), ..Route::default() }
}

/// Parses the output of `birdc show route all` (BIRD 2.0).
pub(crate) fn parse_routes(text: &str) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    let mut prefix = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            // A new network (or a header such as `BIRD 2.0.12 ready.` / `Table master4:`).
            let mut words = trimmed.splitn(2, char::is_whitespace);
            let first = words.next().unwrap_or_default();
            if is_prefix(first) {
                prefix = first.to_owned();
                routes.push(path_line(&prefix, words.next().unwrap_or_default()));
            } else {
                prefix.clear();
            }
        } else if let Some(attr) = trimmed.strip_prefix("BGP.") {
            let Some(route) = routes.last_mut() else {
                continue;
            };
            let (key, value) = attr.split_once(':').unwrap_or((attr, ""));
            let value = value.trim().to_owned();
            match key {
                "next_hop" => route.next_hop = Some(value),
                "med" => route.med = value.parse().ok(),
                "local_pref" => route.local_pref = value.parse().ok(),
                "as_path" => route.as_path = Some(value),
                "community" => route.community = Some(value),
                _ => {}
            }
        } else if !prefix.is_empty() && trimmed.contains(" [") && !trimmed.starts_with("Type:") {
            // A further path of the same network.
            routes.push(path_line(&prefix, trimmed));
        }
    }
    routes
}

/// A process identified by PID and start time (so a reused PID is not mistaken for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Proc {
    /// The PID.
    pub(crate) pid: u32,
    start: u64,
}

struct Stat {
    state: char,
    ppid: u32,
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), fields[1] field 4 (ppid), fields[19] field 22 (starttime).
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
        })
        .unwrap_or_default()
}

fn environ_has(pid: u32, entry: &str) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|raw| raw.split(|b| *b == 0).any(|e| e == entry.as_bytes()))
        .unwrap_or(false)
}

fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

impl Proc {
    fn of(pid: u32) -> Option<Proc> {
        stat(pid).map(|s| Proc { pid, start: s.start })
    }

    /// Still running (same PID and start time, and not a zombie).
    pub(crate) fn alive(self) -> bool {
        stat(self.pid).is_some_and(|s| s.start == self.start && s.state != 'Z' && s.state != 'X')
    }

    /// Sends `sig` only if this is still the same process and its command line
    /// satisfies `expect`. Returns whether the signal was sent.
    fn signal(self, sig: Signal, expect: impl Fn(&[String]) -> bool) -> bool {
        if !self.alive() {
            return false;
        }
        let argv = cmdline(self.pid);
        if argv.is_empty() || !expect(&argv) {
            return false;
        }
        let Ok(raw) = i32::try_from(self.pid) else {
            return false;
        };
        kill(Pid::from_raw(raw), sig).is_ok()
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds a program in `PATH` (plus the sbin directories, where Debian puts BIRD).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// A /24 of its own inside 127.0.0.0/8: `.1` the peer (BIRD or FRR), `.2` ExaBGP, `.3` the service.
#[derive(Clone, Copy, Debug)]
struct Net {
    a: u8,
    b: u8,
}

static NEXT_NET: AtomicU8 = AtomicU8::new(1);

impl Net {
    fn addr(self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, self.a, self.b, host)
    }

    /// Picks a /24 derived from our PID (so concurrent test runs differ) and a
    /// per-process counter, and checks that the peer's and the service's sockets
    /// are free there.
    fn allocate() -> Net {
        let a = u8::try_from(64 + std::process::id() % 160).unwrap_or(64);
        loop {
            let b = NEXT_NET.fetch_add(1, Ordering::SeqCst);
            assert!(b < 250, "out of loopback networks");
            let net = Net { a, b };
            let free = TcpListener::bind((net.addr(1), BGP_PORT)).is_ok()
                && TcpListener::bind((net.addr(3), SERVICE_PORT)).is_ok();
            if free {
                return net;
            }
        }
    }
}

/// A TCP listener on loopback that accepts and drops connections.
struct Service {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Service {
    fn start(addr: SocketAddr) -> Service {
        let deadline = Instant::now() + secs(10.0);
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline && e.kind() == ErrorKind::AddrInUse => {
                    thread::sleep(POLL);
                }
                Err(e) => panic!("cannot bind the test service on {addr}: {e}"),
            }
        };
        listener.set_nonblocking(true).expect("set the service listener non-blocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => drop(conn),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            // The listener is dropped here: from now on connections are refused.
        });
        Service { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// One end-to-end environment: run directory, the peer, ExaBGP with exaprobe, service.
pub(crate) struct Harness {
    test: String,
    version: Version,
    router: Router,
    flavor: Flavor,
    exabgp_bin: PathBuf,
    dir: Option<tempfile::TempDir>,
    run: PathBuf,
    net: Net,
    t0: Instant,
    events: Vec<String>,
    /// The peer's process (BIRD or bgpd).
    peer: Option<Child>,
    exabgp: Option<Child>,
    service: Option<Service>,
}

impl Harness {
    /// Creates the run directory and starts BIRD. Panics with a clear message
    /// when ExaBGP or BIRD is missing.
    pub(crate) fn new(test: &str, version: Version) -> Harness {
        Harness::with_router(test, version, Router::Bird)
    }

    /// Creates the run directory and starts `router`. Panics with a clear
    /// message when ExaBGP or the router is missing.
    pub(crate) fn with_router(test: &str, version: Version, router: Router) -> Harness {
        let exabgp_bin = version.exabgp();
        match router {
            Router::Bird => {
                for program in ["bird", "birdc"] {
                    assert!(
                        find_program(program).is_some(),
                        "`{program}` not found: the end-to-end tests need BIRD 2 \
                         (apt-get install bird2, or run scripts/test)"
                    );
                }
            }
            Router::Frr => {
                assert!(
                    frr::bgpd().is_some() && frr::vtysh().is_some(),
                    "FRR's bgpd (/usr/lib/frr/bgpd) or vtysh not found: the FRR end-to-end tests \
                     need FRR (apt-get install frr, or run scripts/test)"
                );
            }
        }
        let flavor = Flavor::from_env();
        if flavor == Flavor::Exaprobe {
            assert!(is_executable(&exaprobe_bin()), "exaprobe binary missing: {}", exaprobe_bin().display());
        }
        let dir = tempfile::Builder::new().prefix("exaprobe-e2e-").tempdir().expect("create the run directory");
        let run = dir.path().to_path_buf();
        let mut h = Harness {
            test: test.to_owned(),
            version,
            router,
            flavor,
            exabgp_bin,
            dir: Some(dir),
            run,
            net: Net::allocate(),
            t0: Instant::now(),
            events: Vec::new(),
            peer: None,
            exabgp: None,
            service: None,
        };
        h.note(&format!(
            "{} {} {} ({:?}), run dir {}, net 127.{}.{}.0/24",
            version.label(),
            router.label(),
            test,
            flavor,
            h.run.display(),
            h.net.a,
            h.net.b
        ));
        match router {
            Router::Bird => h.start_bird(),
            Router::Frr => h.start_frr(),
        }
        h
    }

    /// The process under test (exaprobe, or the healthcheck in reference mode).
    pub(crate) fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// ExaBGP's address (the `next-hop self` of its routes).
    pub(crate) fn exabgp_addr(&self) -> Ipv4Addr {
        self.net.addr(2)
    }

    /// The next hop the peer shows for an IPv4 route whose scenario names
    /// none: `next-hop self` (ExaBGP's address) with BIRD; with FRR, which
    /// refuses 127/8 next hops, the one the harness passes ([`frr::NEXT_HOP`]).
    pub(crate) fn default_next_hop(&self) -> String {
        match self.router {
            Router::Bird => self.exabgp_addr().to_string(),
            Router::Frr => frr::NEXT_HOP.to_owned(),
        }
    }

    /// The service's `IP:PORT`.
    pub(crate) fn service_addr(&self) -> String {
        format!("{}:{SERVICE_PORT}", self.net.addr(3))
    }

    /// The peer's address (the neighbor of ExaBGP).
    pub(crate) fn router_addr(&self) -> Ipv4Addr {
        self.net.addr(1)
    }

    /// A path in the run directory (removed with it).
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.run.join(name)
    }

    /// Logs a step (printed when the test fails).
    pub(crate) fn note(&mut self, msg: &str) {
        let line = format!("{:8.3}s  {msg}", self.t0.elapsed().as_secs_f64());
        self.events.push(line);
    }

    /// Records a measured delay (stderr, and `EXAPROBE_E2E_TIMINGS` if set).
    pub(crate) fn timing(&mut self, what: &str, d: Duration) {
        let line = format!(
            "{:<11} {:<5} {:<9} {:<44} {what}: {:.3} s",
            self.version.label(),
            self.router.label(),
            format!("{:?}", self.flavor).to_lowercase(),
            self.test,
            d.as_secs_f64()
        );
        self.note(&format!("timing: {what}: {:.3} s", d.as_secs_f64()));
        eprintln!("{line}");
        if let Some(file) = std::env::var_os("EXAPROBE_E2E_TIMINGS")
            && let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(file)
        {
            // One write per line: parallel tests append to the same file.
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }

    fn log_file(&self, name: &str) -> fs::File {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.run.join(name))
            .expect("open a log file in the run directory")
    }

    fn bird_ctl(&self) -> PathBuf {
        self.run.join("bird.ctl")
    }

    fn exabgp_conf(&self) -> PathBuf {
        self.run.join("exabgp.conf")
    }

    // ---------------------------------------------------------------- BIRD

    fn start_bird(&mut self) {
        let (bird, exa) = (self.net.addr(1), self.net.addr(2));
        let conf = format!(
            "# BIRD 2 peer for {test} ({label}).\n\
             # RIB only: there is deliberately NO `protocol kernel`, nothing learned\n\
             # here may ever reach a kernel routing table.\n\
             router id {bird};\n\
             log stderr all;\n\
             protocol device {{ scan time 10; }}\n\
             protocol bgp exa {{\n\
             \x20   local {bird} port {BGP_PORT} as 65000;\n\
             \x20   neighbor {exa} as 65001;\n\
             \x20   strict bind on;        # listen on {bird}:{BGP_PORT} only\n\
             \x20   passive on;            # ExaBGP connects\n\
             \x20   multihop;              # 127/8 peers are refused as direct eBGP\n\
             \x20   hold time 30;\n\
             \x20   error wait time 1, 5;\n\
             \x20   ipv4 {{ import all; export none; }};\n\
             \x20   ipv6 {{ import all; export none; }};\n\
             }}\n",
            test = self.test,
            label = self.version.label(),
        );
        let path = self.run.join("bird.conf");
        fs::write(&path, conf).expect("write bird.conf");
        let bird = find_program("bird").expect("bird in PATH");
        let child = Command::new(bird)
            .arg("-f")
            .arg("-c")
            .arg(&path)
            .arg("-s")
            .arg(self.bird_ctl())
            .arg("-P")
            .arg(self.run.join("bird.pid"))
            .stdin(Stdio::null())
            .stdout(self.log_file("bird.log"))
            .stderr(self.log_file("bird.log"))
            .spawn()
            .expect("start bird");
        self.note(&format!("BIRD started, pid {}", child.id()));
        self.peer = Some(child);
        self.wait_for("BIRD's control socket", secs(20.0), |h| {
            h.birdc_try(&["show", "status"]).ok().filter(|out| out.contains("ready"))
        });
    }

    fn birdc_try(&self, args: &[&str]) -> Result<String, String> {
        let birdc = find_program("birdc").ok_or("birdc not found")?;
        let out = Command::new(birdc)
            .arg("-s")
            .arg(self.bird_ctl())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run birdc: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || text.contains("Unable to connect") {
            return Err(format!(
                "birdc {args:?} failed ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(text)
    }

    /// Runs `birdc` on this harness's BIRD.
    pub(crate) fn birdc(&self, args: &[&str]) -> String {
        self.birdc_try(args).unwrap_or_else(|e| panic!("{e}"))
    }

    // ----------------------------------------------------------------- FRR

    fn frr_conf(&self) -> PathBuf {
        self.run.join("bgpd.conf")
    }

    fn start_frr(&mut self) {
        let (frr, exa) = (self.net.addr(1), self.net.addr(2));
        let title = format!("{} ({})", self.test, self.version.label());
        fs::write(self.frr_conf(), frr::config(&title, frr, exa)).expect("write bgpd.conf");
        let bgpd = frr::bgpd().expect("FRR's bgpd");
        let child = Command::new(bgpd)
            .arg("-f")
            .arg(self.frr_conf())
            .arg("-i")
            .arg(self.run.join("bgpd.pid"))
            .arg("--vty_socket")
            .arg(&self.run)
            // RIB only: no zebra at all, and no routes handed to it.
            .args(["-Z", "-n"])
            // Listen on this harness's address and port only; no vty TCP port.
            .arg("-l")
            .arg(frr.to_string())
            .arg("-p")
            .arg(BGP_PORT.to_string())
            .args(["-P", "0"])
            // Stay root (the run directory is 0700), log to stdout (bgpd.log).
            .args(["-S", "--log", "stdout"])
            .current_dir(&self.run)
            .stdin(Stdio::null())
            .stdout(self.log_file("bgpd.log"))
            .stderr(self.log_file("bgpd.log"))
            .spawn()
            .expect("start bgpd");
        self.note(&format!("bgpd started, pid {}", child.id()));
        self.peer = Some(child);
        let (_, config) =
            self.wait_for("bgpd's vty socket", secs(20.0), |h| h.vtysh_try(&["show running-config"]).ok());
        // `-n` shows as `bgp no-rib`: bgpd itself says it keeps routes to its RIB.
        assert!(config.contains("bgp no-rib"), "bgpd should run with bgp no-rib:\n{config}");
    }

    fn vtysh_try(&self, commands: &[&str]) -> Result<String, String> {
        let vtysh = frr::vtysh().ok_or("vtysh not found")?;
        let mut cmd = Command::new(vtysh);
        cmd.arg("--vty_socket").arg(&self.run).args(["-d", "bgpd"]);
        for c in commands {
            cmd.arg("-c").arg(c);
        }
        let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run vtysh: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "vtysh {commands:?} failed ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(text)
    }

    /// Runs vtysh commands on this harness's bgpd.
    pub(crate) fn vtysh(&self, commands: &[&str]) -> String {
        self.vtysh_try(commands).unwrap_or_else(|e| panic!("{e}"))
    }

    // ------------------------------------------------------------ the peer

    /// Every path in the peer's RIB.
    pub(crate) fn routes(&self) -> Vec<Route> {
        match self.router {
            Router::Bird => parse_routes(&self.birdc(&["show", "route", "all"])),
            Router::Frr => {
                let text = self.vtysh(&["show bgp ipv4 unicast json detail", "show bgp ipv6 unicast json detail"]);
                frr::parse_routes(&text).unwrap_or_else(|e| panic!("{e}"))
            }
        }
    }

    /// Whether the BGP session with ExaBGP is Established (as the peer sees it).
    pub(crate) fn session_established(&self) -> bool {
        match self.router {
            Router::Bird => self.birdc(&["show", "protocols", "exa"]).contains("Established"),
            Router::Frr => {
                let neighbor = self.exabgp_addr();
                frr::is_established(&self.vtysh(&[&format!("show bgp neighbors {neighbor} json")]), neighbor)
            }
        }
    }

    /// Panics if a route of `prefix`'s payload range is in any kernel table:
    /// the peers are RIB-only, this checks it.
    fn assert_not_in_kernel(&self, prefix: &str) {
        let root = if prefix.contains(':') { "2001:db8::/32" } else { "198.51.100.0/24" };
        let found = frr::kernel_routes(root).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            found.trim().is_empty(),
            "{} is RIB-only, yet the kernel has routes in {root}:\n{found}",
            self.router.label()
        );
    }

    /// The best path for `prefix`, if the peer has one.
    pub(crate) fn route(&self, prefix: &str) -> Option<Route> {
        self.routes().into_iter().find(|r| r.prefix == prefix && r.best)
    }

    /// Polls `f` every 20 ms until it returns `Some`, and returns the instant
    /// at which it did. Panics after `timeout`, or when ExaBGP dies meanwhile.
    pub(crate) fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&mut Self) -> Option<T>,
    ) -> (Instant, T) {
        let start = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return (Instant::now(), v);
            }
            if let Some(exa) = self.exabgp.as_mut()
                && let Ok(Some(status)) = exa.try_wait()
            {
                self.note(&format!("ExaBGP exited: {status}"));
                panic!("ExaBGP exited ({status}) while waiting for {what} ({} {})", self.version.label(), self.test);
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {:.1} s waiting for {what} ({} {})",
                    timeout.as_secs_f64(),
                    self.version.label(),
                    self.test
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Waits until the peer's best path for `prefix` satisfies `pred`.
    pub(crate) fn wait_route(
        &mut self,
        prefix: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Route) -> bool,
    ) -> (Instant, Route) {
        let label = format!("{prefix}: {what}");
        let found = self.wait_for(&label, timeout, |h| h.route(prefix).filter(|r| pred(r)));
        self.note(&format!("seen {label}: {:?}", found.1));
        self.assert_not_in_kernel(prefix);
        found
    }

    /// Waits until the peer has a best path for `prefix`, and checks that it
    /// carries the default up-metric (MED 100).
    pub(crate) fn wait_route_up(&mut self, prefix: &str, timeout: Duration, what: &str) -> (Instant, Route) {
        let found = self.wait_route(prefix, timeout, what, |_| true);
        assert_eq!(
            found.1.med,
            Some(100),
            "{prefix} {what}: expected MED 100 (the default --up-metric): {:?}",
            found.1
        );
        found
    }

    /// Waits until the peer has no path at all for `prefix`.
    pub(crate) fn wait_route_gone(&mut self, prefix: &str, timeout: Duration) -> Instant {
        let label = format!("{prefix} to be withdrawn");
        let (at, ()) =
            self.wait_for(&label, timeout, |h| (!h.routes().iter().any(|r| r.prefix == prefix)).then_some(()));
        self.note(&format!("seen {prefix} gone"));
        at
    }

    // ------------------------------------------------------------- service

    /// Starts (or restarts) the loopback service; returns when it accepts.
    pub(crate) fn service_start(&mut self) -> Instant {
        assert!(self.service.is_none(), "service already running");
        let addr: SocketAddr = self.service_addr().parse().expect("service address");
        self.service = Some(Service::start(addr));
        let at = Instant::now();
        self.note(&format!("service listening on {addr}"));
        at
    }

    /// Stops the service; returns the instant from which connections are refused.
    pub(crate) fn service_stop(&mut self) -> Instant {
        let service = self.service.take().expect("service not running");
        service.stop();
        let at = Instant::now();
        self.note("service stopped");
        at
    }

    // -------------------------------------------------------------- ExaBGP

    fn process_argv(&self, args: &[&str]) -> Vec<String> {
        // The flags every process gets: harmless no-ops for exaprobe (it is a
        // drop-in), and vital for the healthcheck (no address setup on `lo`).
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.extend(["--no-ip-setup", "--no-syslog"].map(String::from));
        if self.router == Router::Frr && !args.iter().any(|a| a == "--next-hop") {
            // FRR resets the session on a 127/8 NEXT_HOP (`next-hop self` here).
            args.extend(["--next-hop", frr::NEXT_HOP].map(String::from));
        }
        match self.flavor {
            Flavor::Exaprobe => {
                let mut argv = vec![exaprobe_bin().display().to_string()];
                argv.extend(args);
                argv
            }
            Flavor::Healthcheck => {
                let python = self.exabgp_bin.parent().expect("exabgp is in a venv bin directory").join("python");
                let mut argv = vec![python.display().to_string()];
                argv.extend(["-m", "exabgp", "healthcheck"].map(String::from));
                let mut it = args.into_iter();
                while let Some(arg) = it.next() {
                    match arg.as_str() {
                        "--tcp" => {
                            let target = it.next().expect("--tcp needs IP:PORT");
                            let (host, port) = target.rsplit_once(':').expect("--tcp IP:PORT");
                            argv.push("--cmd".to_owned());
                            argv.push(format!("nc -z -w 1 {host} {port}"));
                        }
                        "--next-hop6" => panic!(
                            "the bundled healthcheck has no --next-hop6: \
                             this test must branch on Harness::flavor()"
                        ),
                        _ => argv.push(arg),
                    }
                }
                argv
            }
        }
    }

    /// Writes the ExaBGP config (process stanza running exaprobe with `args`,
    /// one neighbor: this harness's peer), starts ExaBGP and waits until the
    /// peer shows the session Established.
    pub(crate) fn start_exabgp(&mut self, args: &[&str], opts: ExaOptions) {
        assert!(self.exabgp.is_none(), "ExaBGP already running");
        let argv = self.process_argv(args);
        let conf = exabgp_config(
            &format!("{} {}", self.test, self.version.label()),
            &run_line(&argv),
            opts.respawn,
            self.net.addr(1),
            self.net.addr(2),
        );
        fs::write(self.exabgp_conf(), &conf).expect("write exabgp.conf");
        let started = Instant::now();
        let child = Command::new(&self.exabgp_bin)
            .arg(self.exabgp_conf())
            .current_dir(&self.run)
            .env("exabgp_daemon_daemonize", "false")
            .env("exabgp_daemon_user", "root")
            .env("exabgp_log_destination", "stdout")
            .env("exabgp_log_short", "false")
            .env("exabgp_api_cli", "false")
            .env("exabgp_api_ack", if opts.ack { "true" } else { "false" })
            .env(MARKER_VAR, &self.run)
            .stdin(Stdio::null())
            .stdout(self.log_file("exabgp.log"))
            .stderr(self.log_file("exabgp.log"))
            .spawn()
            .expect("start ExaBGP");
        self.note(&format!("ExaBGP started, pid {}, process: {}", child.id(), run_line(&argv)));
        self.exabgp = Some(child);
        let (at, ()) =
            self.wait_for("the BGP session to be Established", secs(40.0), |h| h.session_established().then_some(()));
        self.note("BGP session Established");
        self.timing("ExaBGP start -> Established", at - started);
    }

    fn exabgp_proc(&self) -> Option<Proc> {
        self.exabgp.as_ref().and_then(|c| Proc::of(c.id()))
    }

    fn is_probe_cmdline(&self, argv: &[String]) -> bool {
        match self.flavor {
            Flavor::Exaprobe => argv.first().map(PathBuf::from) == Some(exaprobe_bin()),
            Flavor::Healthcheck => argv.iter().any(|a| a == "healthcheck"),
        }
    }

    /// The API process ExaBGP is currently running (its child running exaprobe).
    pub(crate) fn probe_process(&self) -> Option<Proc> {
        let parent = self.exabgp_proc()?.pid;
        all_pids().into_iter().find_map(|pid| {
            let s = stat(pid)?;
            (s.ppid == parent && s.state != 'Z' && self.is_probe_cmdline(&cmdline(pid)))
                .then(|| Proc::of(pid))
                .flatten()
        })
    }

    /// Waits for ExaBGP's API process (a different one than `other_than`).
    pub(crate) fn wait_probe_process(&mut self, timeout: Duration, other_than: Option<Proc>) -> Proc {
        let (_, p) =
            self.wait_for("ExaBGP's API process", timeout, |h| h.probe_process().filter(|p| Some(*p) != other_than));
        self.note(&format!("API process is pid {}", p.pid));
        p
    }

    /// Signals the API process (after checking its command line).
    pub(crate) fn signal_probe(&mut self, p: Proc, sig: Signal) -> Instant {
        let sent = p.signal(sig, |argv| self.is_probe_cmdline(argv));
        let at = Instant::now();
        assert!(sent, "could not signal the API process {p:?}");
        self.note(&format!("sent {sig} to the API process, pid {}", p.pid));
        at
    }

    /// Sends SIGTERM to ExaBGP; returns the instant it was sent.
    pub(crate) fn sigterm_exabgp(&mut self) -> Instant {
        let p = self.exabgp_proc().expect("ExaBGP is running");
        let conf = self.exabgp_conf().display().to_string();
        let sent = p.signal(Signal::SIGTERM, |argv| argv.contains(&conf));
        let at = Instant::now();
        assert!(sent, "could not signal ExaBGP (pid {})", p.pid);
        self.note("sent SIGTERM to ExaBGP");
        at
    }

    /// Waits for ExaBGP to exit; returns the instant and its status.
    pub(crate) fn wait_exabgp_exit(&mut self, timeout: Duration) -> (Instant, ExitStatus) {
        let mut child = self.exabgp.take().expect("ExaBGP was started");
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let at = Instant::now();
                    self.note(&format!("ExaBGP exited: {status}"));
                    return (at, status);
                }
                Ok(None) if start.elapsed() < timeout => thread::sleep(POLL),
                _ => {
                    self.exabgp = Some(child);
                    panic!("ExaBGP did not exit within {:.1} s of SIGTERM", timeout.as_secs_f64());
                }
            }
        }
    }

    /// Processes (other than the peer and this test) that carry this harness's
    /// marker: the run directory in their command line, or the marker
    /// variable in their environment (everything ExaBGP starts inherits it).
    pub(crate) fn marked_processes(&self) -> Vec<(u32, Vec<String>)> {
        let peer = self.peer.as_ref().map(Child::id);
        let me = std::process::id();
        let dir = format!("{}/", self.run.display());
        let marker = format!("{MARKER_VAR}={}", self.run.display());
        all_pids()
            .into_iter()
            .filter(|pid| Some(*pid) != peer && *pid != me)
            .filter(|pid| stat(*pid).is_some_and(|s| s.state != 'Z' && s.state != 'X'))
            .filter_map(|pid| {
                let argv = cmdline(pid);
                (argv.iter().any(|a| a.contains(&dir)) || environ_has(pid, &marker)).then_some((pid, argv))
            })
            .collect()
    }

    /// ExaBGP's log so far.
    pub(crate) fn exabgp_log(&self) -> String {
        fs::read_to_string(self.run.join("exabgp.log")).unwrap_or_default()
    }

    // ------------------------------------------------------------ teardown

    fn dump(&self) {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n======== e2e failure: {} {} {} ({:?}); run dir kept: {}",
            self.version.label(),
            self.router.label(),
            self.test,
            self.flavor,
            self.run.display()
        );
        let _ = writeln!(out, "---- steps");
        for e in &self.events {
            let _ = writeln!(out, "{e}");
        }
        let peer_log = match self.router {
            Router::Bird => {
                for cmd in [&["show", "protocols", "all", "exa"][..], &["show", "route", "all"][..]] {
                    let _ = writeln!(out, "---- birdc {}", cmd.join(" "));
                    let _ = writeln!(out, "{}", self.birdc_try(cmd).unwrap_or_else(|e| e));
                }
                "bird.log"
            }
            Router::Frr => {
                for cmd in ["show bgp summary", "show bgp ipv4 unicast detail", "show bgp ipv6 unicast detail"] {
                    let _ = writeln!(out, "---- vtysh -c '{cmd}'");
                    let _ = writeln!(out, "{}", self.vtysh_try(&[cmd]).unwrap_or_else(|e| e));
                }
                "bgpd.log"
            }
        };
        for (name, lines) in [("exabgp.conf", 100), ("exabgp.log", 250), (peer_log, 60)] {
            let text = fs::read_to_string(self.run.join(name)).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            let _ = writeln!(out, "---- {name} (last {} lines)", all.len() - from);
            for l in &all[from..] {
                let _ = writeln!(out, "{l}");
            }
        }
        let _ = writeln!(out, "======== end of e2e failure dump");
        eprintln!("{out}");
    }

    fn stop_child(child: &mut Child, expect: &str, grace: Duration) {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        let Some(p) = Proc::of(child.id()) else {
            return;
        };
        let matches = |argv: &[String]| argv.iter().any(|a| a.contains(expect));
        p.signal(Signal::SIGTERM, matches);
        let start = Instant::now();
        while start.elapsed() < grace {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(POLL);
        }
        p.signal(Signal::SIGKILL, matches);
        let _ = child.wait();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let failed = thread::panicking();
        if failed {
            self.dump();
        }
        if let Some(service) = self.service.take() {
            service.stop();
        }
        if let Some(mut exa) = self.exabgp.take() {
            let conf = self.exabgp_conf().display().to_string();
            Self::stop_child(&mut exa, &conf, secs(10.0));
        }
        // Whatever ExaBGP left behind (a process that did not exit, or an
        // orphan): everything carrying our marker is ours.
        let leftovers = self.marked_processes();
        let mut seen = HashSet::new();
        for (pid, argv) in leftovers {
            eprintln!(
                "e2e teardown ({} {}): killing leftover process {pid}: {}",
                self.version.label(),
                self.test,
                argv.join(" ")
            );
            if let Some(p) = Proc::of(pid)
                && p.signal(Signal::SIGKILL, |a| a == argv.as_slice())
            {
                seen.insert(pid);
            }
        }
        let start = Instant::now();
        while seen.iter().any(|pid| stat(*pid).is_some_and(|s| s.state != 'Z')) && start.elapsed() < secs(5.0) {
            thread::sleep(POLL);
        }
        if let Some(mut peer) = self.peer.take() {
            let pid = peer.id();
            // The command line names the run directory's control socket / config.
            let mark = match self.router {
                Router::Bird => self.bird_ctl(),
                Router::Frr => self.frr_conf(),
            };
            Self::stop_child(&mut peer, &mark.display().to_string(), secs(5.0));
            if self.router == Router::Frr {
                // bgpd keeps crash-log buffers in /var/tmp/frr/bgpd.PID and removes
                // them on a clean exit; not after a SIGKILL.
                let _ = fs::remove_dir_all(format!("/var/tmp/frr/bgpd.{pid}"));
            }
        }
        if let Some(dir) = self.dir.take()
            && (failed || std::env::var_os("EXAPROBE_E2E_KEEP").is_some())
        {
            let kept = dir.keep();
            eprintln!("e2e: run directory kept: {}", kept.display());
        }
    }
}

/// Renders argv as an ExaBGP `run` value: ExaBGP splits it on spaces and
/// honours double quotes; there is no shell.
pub(crate) fn run_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            assert!(
                !a.contains(['"', '\'', ';', '{', '}', '#', '\n', '\\']),
                "argument {a:?} cannot be written on an ExaBGP run line"
            );
            if a.is_empty() || a.contains(char::is_whitespace) { format!("\"{a}\"") } else { a.clone() }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The ExaBGP config (identical for 4.2 and 5.0): one process, one neighbor.
pub(crate) fn exabgp_config(title: &str, run: &str, respawn: bool, bird: Ipv4Addr, local: Ipv4Addr) -> String {
    let respawn = if respawn { "" } else { "    respawn false;\n" };
    format!(
        "# Generated by tests/e2e_support for {title}.\n\
         process probe {{\n\
         \x20   run {run};\n\
         \x20   encoder text;\n\
         {respawn}\
         }}\n\
         \n\
         neighbor {bird} {{\n\
         \x20   router-id {local};\n\
         \x20   local-address {local};\n\
         \x20   local-as 65001;\n\
         \x20   peer-as 65000;\n\
         \x20   connect {BGP_PORT};\n\
         \x20   hold-time 30;\n\
         \x20   family {{\n\
         \x20       ipv4 unicast;\n\
         \x20       ipv6 unicast;\n\
         \x20   }}\n\
         \x20   api {{\n\
         \x20       processes [ probe ];\n\
         \x20   }}\n\
         }}\n"
    )
}

// ---------------------------------------------------------------------------
// Additions for tests/e2e_ops.rs (the operating features: degraded, drain,
// reload, dampening). tests/e2e.rs compiles this module too and uses none of
// them, hence the `allow(dead_code)`s.

/// The process under test, from `EXAPROBE_E2E_PROCESS` (so that a scenario
/// that only exaprobe can pass is skipped before anything is started).
#[allow(dead_code)]
pub(crate) fn flavor_from_env() -> Flavor {
    Flavor::from_env()
}

/// A loopback TCP listener that a test owns (it accepts and drops
/// connections), for checks other than the harness's own service. It is
/// stopped when dropped.
#[allow(dead_code)]
pub(crate) struct Listener {
    addr: SocketAddr,
    service: Option<Service>,
}

#[allow(dead_code)]
impl Listener {
    /// Starts listening on `addr`; returns when it accepts.
    pub(crate) fn start(addr: SocketAddr) -> Listener {
        Listener { addr, service: Some(Service::start(addr)) }
    }

    /// The `IP:PORT` it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening; returns the instant from which connections are refused.
    pub(crate) fn stop(&mut self) -> Instant {
        self.service.take().expect("listener not running").stop();
        Instant::now()
    }

    /// Listens again; returns when it accepts.
    pub(crate) fn restart(&mut self) -> Instant {
        assert!(self.service.is_none(), "listener already running");
        self.service = Some(Service::start(self.addr));
        Instant::now()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(s) = self.service.take() {
            s.stop();
        }
    }
}

/// The import counters of a BGP protocol (`received` column of `Import
/// updates` and `Import withdraws`), summed over its channels.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ImportStats {
    /// Routes received in UPDATEs (announcements).
    pub(crate) updates: u64,
    /// Withdrawals received.
    pub(crate) withdraws: u64,
}

#[allow(dead_code)]
impl ImportStats {
    /// What was counted since `before`.
    pub(crate) fn since(self, before: ImportStats) -> ImportStats {
        ImportStats { updates: self.updates - before.updates, withdraws: self.withdraws - before.withdraws }
    }

    /// Announcements plus withdrawals.
    pub(crate) fn changes(self) -> u64 {
        self.updates + self.withdraws
    }
}

/// Parses the import counters out of `birdc show protocols all PROTO` (BIRD 2.0):
///
/// ```text
///     Route change stats:     received   rejected   filtered    ignored   accepted
///       Import updates:              3          0          0          0          3
///       Import withdraws:            2          0        ---          0          2
/// ```
#[allow(dead_code)]
pub(crate) fn parse_import_stats(text: &str) -> ImportStats {
    let received = |rest: &str| rest.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    let mut stats = ImportStats::default();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Import updates:") {
            stats.updates += received(rest);
        } else if let Some(rest) = line.strip_prefix("Import withdraws:") {
            stats.withdraws += received(rest);
        }
    }
    stats
}

/// The time BIRD shows for the best path of `prefix` in `birdc show route
/// all` (`03:43:34.961` in `[exa 03:43:34.961 from 127.66.1.2] *`): when the
/// route was last imported, so it only changes when the route is replaced.
#[allow(dead_code)]
pub(crate) fn parse_route_stamp(text: &str, prefix: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        let rest = if line.starts_with(char::is_whitespace) {
            trimmed
        } else {
            let mut words = trimmed.splitn(2, char::is_whitespace);
            current = words.next().unwrap_or_default().to_owned();
            words.next().unwrap_or_default()
        };
        if current != prefix || trimmed.starts_with("Type:") {
            continue;
        }
        let Some((_, inner)) = rest.split_once('[') else { continue };
        let Some((inside, after)) = inner.split_once(']') else { continue };
        if after.trim_start().starts_with('*') {
            return inside.split_whitespace().nth(1).map(str::to_owned);
        }
    }
    None
}

/// A route time as BIRD prints it (`13:15:24.914`) in milliseconds since
/// midnight.
#[allow(dead_code)]
pub(crate) fn stamp_ms(stamp: &str) -> Option<u64> {
    let (hms, ms) = stamp.split_once('.').unwrap_or((stamp, "0"));
    let mut parts = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (parts.next()??, parts.next()??, parts.next()??);
    Some(((h * 60 + m) * 60 + sec) * 1000 + ms.parse::<u64>().ok()?)
}

/// True when a route time read later (`now`) shows the route replaced
/// since `then`: moved by more than 50 ms. BIRD keeps route times on its
/// monotonic clock and converts them to wall-clock time when it prints them,
/// so the same route can read a millisecond apart; a time that could not be
/// read (birdc failing under load) is no evidence either way.
#[allow(dead_code)]
pub(crate) fn stamp_moved(then: Option<&str>, now: Option<&str>) -> bool {
    match (then.and_then(stamp_ms), now.and_then(stamp_ms)) {
        (Some(a), Some(b)) => a.abs_diff(b) > 50,
        _ => false,
    }
}

/// What a client run of the exaprobe binary printed.
#[allow(dead_code)]
#[derive(Debug)]
pub(crate) struct ClientRun {
    /// Its exit status.
    pub(crate) status: ExitStatus,
    /// Its standard output.
    pub(crate) stdout: String,
    /// Its standard error.
    pub(crate) stderr: String,
}

#[allow(dead_code)]
impl Harness {
    /// Another address of this harness's /24 (`host` 4 and up: 1 to 3 are
    /// BIRD, ExaBGP and the harness's service).
    pub(crate) fn host_addr(&self, host: u8) -> Ipv4Addr {
        assert!((4..255).contains(&host), "host {host}: .1-.3 are taken, .255 is broadcast");
        self.net.addr(host)
    }

    /// BIRD's import counters for the ExaBGP session.
    pub(crate) fn import_stats(&self) -> ImportStats {
        parse_import_stats(&self.birdc(&["show", "protocols", "all", "exa"]))
    }

    /// The time BIRD shows on the best path of `prefix` (see [`parse_route_stamp`]).
    pub(crate) fn route_stamp(&self, prefix: &str) -> Option<String> {
        parse_route_stamp(&self.birdc(&["show", "route", "all"]), prefix)
    }

    /// Records a measured figure that is not a delay (a count, say), like
    /// [`Harness::timing`]: on stderr and in `EXAPROBE_E2E_TIMINGS`.
    pub(crate) fn figure(&mut self, what: &str, value: &str) {
        let line = format!(
            "{:<11} {:<5} {:<9} {:<44} {what}: {value}",
            self.version.label(),
            self.router.label(),
            format!("{:?}", self.flavor).to_lowercase(),
            self.test,
        );
        self.note(&format!("figure: {what}: {value}"));
        eprintln!("{line}");
        if let Some(file) = std::env::var_os("EXAPROBE_E2E_TIMINGS")
            && let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(file)
        {
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }

    /// Runs the exaprobe binary as a client (`status`, `drain`, …), with a
    /// bound on its run time; the child is killed (by its own handle) if it
    /// overruns.
    pub(crate) fn exaprobe_client(&mut self, args: &[&str], timeout: Duration) -> ClientRun {
        let mut child = Command::new(exaprobe_bin())
            .args(args)
            .current_dir(&self.run)
            .env(MARKER_VAR, &self.run)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the exaprobe client");
        let start = Instant::now();
        let status = loop {
            match child.try_wait().expect("wait for the exaprobe client") {
                Some(status) => break status,
                None if start.elapsed() < timeout => thread::sleep(POLL),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("`exaprobe {}` did not finish within {:.1} s", args.join(" "), timeout.as_secs_f64());
                }
            }
        };
        let read = |pipe: Option<&mut dyn std::io::Read>| {
            let mut s = String::new();
            if let Some(p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        };
        let stdout = read(child.stdout.as_mut().map(|p| p as &mut dyn std::io::Read));
        let stderr = read(child.stderr.as_mut().map(|p| p as &mut dyn std::io::Read));
        self.note(&format!("ran `exaprobe {}`: {status}; stdout {stdout:?}; stderr {stderr:?}", args.join(" ")));
        ClientRun { status, stdout, stderr }
    }

    /// The length of ExaBGP's log so far (an offset for [`Harness::wait_log`]).
    pub(crate) fn exabgp_log_len(&self) -> usize {
        self.exabgp_log().len()
    }

    /// Waits until ExaBGP's log (which has exaprobe's stderr too), from byte
    /// `from` on, contains `needle`.
    pub(crate) fn wait_log(&mut self, from: usize, needle: &str, timeout: Duration) -> Instant {
        let label = format!("{needle:?} in ExaBGP's log");
        let (at, ()) = self.wait_for(&label, timeout, |h| {
            h.exabgp_log().get(from..).is_some_and(|tail| tail.contains(needle)).then_some(())
        });
        self.note(&format!("seen {label}"));
        at
    }

    /// Polls `check` every 20 ms for `period`; panics with its message as
    /// soon as it reports something (a route that came back, say), or when
    /// ExaBGP exits meanwhile.
    pub(crate) fn hold_for(&mut self, what: &str, period: Duration, mut check: impl FnMut(&Self) -> Option<String>) {
        let start = Instant::now();
        while start.elapsed() < period {
            if let Some(problem) = check(self) {
                self.note(&format!("while holding ({what}): {problem}"));
                panic!(
                    "{what}: {problem}, {:.3} s into the {:.1} s hold ({} {})",
                    start.elapsed().as_secs_f64(),
                    period.as_secs_f64(),
                    self.version.label(),
                    self.test
                );
            }
            if let Some(exa) = self.exabgp.as_mut()
                && let Ok(Some(status)) = exa.try_wait()
            {
                panic!("ExaBGP exited ({status}) while holding: {what}");
            }
            thread::sleep(POLL);
        }
        self.note(&format!("held for {:.1} s: {what}", period.as_secs_f64()));
    }
}
