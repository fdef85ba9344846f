//! Event-driven detection (issue 13) with real processes: a small TCP
//! listener (python3) that writes its pid file, is killed with SIGKILL, is
//! restarted with a new pid file, closes its socket while it keeps running;
//! and a maintenance file that appears. exaprobe runs with `--interval 10s`,
//! so each reaction within 1 s (a generous bound; the precise figures are in
//! scripts/bench-events) can only come from a watch.

mod harness;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use harness::Probe;

/// What the listener does: bind, write its pid file (through a rename, as
/// daemons do), then obey "close" / "open" on stdin.
const LISTENER: &str = r#"
import os, socket, sys
port, pidfile = int(sys.argv[1]), sys.argv[2]
def listen():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    return s
s = listen()
with open(pidfile + ".tmp", "w") as f:
    f.write("%d\n" % os.getpid())
os.rename(pidfile + ".tmp", pidfile)
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "close":
        s.close()
    elif line.strip() == "open":
        s = listen()
    print(line.strip(), flush=True)
"#;

/// Within this of the cause, the reaction must be seen (the interval is 10 s).
const BOUND: Duration = Duration::from_secs(1);

struct Listener {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<std::process::ChildStdout>,
}

impl Listener {
    fn start(port: u16, pid_file: &Path) -> Option<Listener> {
        let spawned = Command::new("python3")
            .args(["-c", LISTENER, &port.to_string(), pid_file.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                assert!(std::env::var("CI").as_deref() != Ok("true"), "python3 is needed in CI: {e}");
                eprintln!("skipped: no python3 ({e})");
                return None;
            }
        };
        let stdin = child.stdin.take().unwrap();
        let mut l = Listener { out: BufReader::new(child.stdout.take().unwrap()), stdin, child };
        assert_eq!(l.answer(), "ready");
        Some(l)
    }

    fn answer(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    fn say(&mut self, what: &str) {
        writeln!(self.stdin, "{what}").unwrap();
        self.stdin.flush().unwrap();
        assert_eq!(self.answer(), what);
    }

    fn kill(&mut self) -> Instant {
        let t = Instant::now();
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        t
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Setup {
    dir: tempfile::TempDir,
    port: u16,
    pid_file: PathBuf,
    maintenance: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("web.pid");
    let maintenance = dir.path().join("maintenance");
    Setup { port: free_port(), pid_file, maintenance, dir }
}

/// exaprobe in dry-run on one service: interval 10 s, fast interval
/// 200 ms, rise 2, fall 3, with a pid-file, a listen watch and a
/// maintenance file.
fn exaprobe(s: &Setup, extra: &str) -> Probe {
    exaprobe_with(s, extra, &[])
}

fn exaprobe_with(s: &Setup, extra: &str, env: &[(&str, &str)]) -> Probe {
    let watch = format!(r#"{{"pid_file": "{}", "listen": "127.0.0.1:{}"}}"#, s.pid_file.display(), s.port);
    exaprobe_watching(s, &watch, extra, env)
}

/// [`exaprobe_with`] with this `watch` object.
fn exaprobe_watching(s: &Setup, watch: &str, extra: &str, env: &[(&str, &str)]) -> Probe {
    let conf = s.dir.path().join("exaprobe.json");
    let text = format!(
        r#"{{"control": {{"socket": "{d}/ctl.sock", "state_file": "{d}/state.json"}},
            "services": [{{"name": "web", "prefixes": ["198.51.100.1/32"],
            "checks": [{{"type": "tcp", "address": "127.0.0.1:{port}"}}],
            "interval": "10s", "fast_interval": "200ms", "timeout": "1s", "rise": 2, "fall": 3,
            "dampening": false, "disable_file": "{maint}",
            "watch": {watch}{extra}}}]}}"#,
        port = s.port,
        maint = s.maintenance.display(),
        d = s.dir.path().display(),
    );
    std::fs::write(&conf, text).unwrap();
    let mut cmd = Command::new(harness::EXE);
    cmd.envs(env.iter().copied()).args(["--dry-run", "--log-level", "debug", "--config", conf.to_str().unwrap()]);
    Probe::spawn(cmd)
}

const ANNOUNCE: &str = "announce route 198.51.100.1/32 next-hop self med 100";
const WITHDRAW: &str = "withdraw route 198.51.100.1/32";

/// Where stderr is now: [`wait_for`] looks at the lines after it only.
fn mark(p: &mut Probe) -> usize {
    p.stderr_text();
    p.seen_stderr.len()
}

/// Waits until a stderr line after `from` ([`mark`]) contains `needle`
/// (bounded by the harness's wait).
fn wait_for(p: &mut Probe, from: usize, needle: &str) {
    let until = Instant::now() + harness::WAIT;
    loop {
        p.stderr_text();
        if p.seen_stderr.get(from..).unwrap_or_default().iter().any(|l| l.contains(needle)) {
            return;
        }
        assert!(Instant::now() < until, "stderr never said {needle:?} after line {from}:\n{}", p.stderr_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The state line of one watch of service `web`.
fn watch_line(watch: &str, state: &str) -> String {
    format!("web: watch {watch}: {state}")
}

/// The next stdout line, and how long after `since` it came.
fn next(p: &mut Probe, since: Instant) -> (String, Duration) {
    let l = p.line();
    (l, since.elapsed())
}

#[test]
fn a_killed_process_is_withdrawn_at_once_and_a_restart_rearms_the_watch() {
    let s = setup();
    let Some(mut l) = Listener::start(s.port, &s.pid_file) else { return };
    // The pid file only: no listen watch can stand in for the process watch.
    let watch = format!(r#"{{"pid_file": "{}"}}"#, s.pid_file.display());
    let mut p = exaprobe_watching(&s, &watch, "", &[]);
    let label = format!("pid-file {}", s.pid_file.display());
    assert_eq!(p.line(), ANNOUNCE);
    wait_for(&mut p, 0, &watch_line(&label, &format!("armed (pid {})", l.child.id())));
    let (old_pid, m) = (l.child.id(), mark(&mut p));
    let t = l.kill();
    let (line, took) = next(&mut p, t);
    assert_eq!(line, WITHDRAW);
    assert!(took < BOUND, "withdrawn {took:?} after kill -9 (interval 10 s)");
    wait_for(&mut p, m, &format!("web: event: process {old_pid} exited; probing now"));

    // Restarted with a new pid file: back after rise, and watched again.
    let mut l2 = Listener::start(s.port, &s.pid_file).unwrap();
    let new_pid = l2.child.id();
    wait_for(&mut p, m, &watch_line(&label, &format!("armed (pid {new_pid})")));
    assert_eq!(p.line(), ANNOUNCE, "back after rise");
    let m = mark(&mut p);
    let t = l2.kill();
    let (line, took) = next(&mut p, t);
    assert_eq!(line, WITHDRAW);
    assert!(took < BOUND, "the second kill, on the re-armed watch: {took:?}");
    wait_for(&mut p, m, &format!("web: event: process {new_pid} exited; probing now"));
}

#[test]
fn a_closed_listener_is_withdrawn_at_once_and_back_after_rise() {
    let s = setup();
    let Some(mut l) = Listener::start(s.port, &s.pid_file) else { return };
    let mut p = exaprobe(&s, "");
    assert_eq!(p.line(), ANNOUNCE);
    let listen = format!("listen 127.0.0.1:{}", s.port);
    // "armed", not the "absent" of before the first dump.
    wait_for(&mut p, 0, &watch_line(&listen, "armed ("));
    let m = mark(&mut p);
    let t = Instant::now();
    l.say("close");
    let (line, took) = next(&mut p, t);
    assert_eq!(line, WITHDRAW);
    assert!(took < BOUND, "withdrawn {took:?} after the listener closed");
    wait_for(&mut p, m, &format!("web: event: listener 127.0.0.1:{} closed", s.port));
    // The process lives on and listens again: UP after rise (2 × 200 ms),
    // not before the second success.
    let m = mark(&mut p);
    let t = Instant::now();
    l.say("open");
    let (line, took) = next(&mut p, t);
    assert_eq!(line, ANNOUNCE);
    assert!(took < Duration::from_secs(5), "back {took:?} after the listener came back");
    wait_for(&mut p, m, "RISING(1/2)");
}

#[test]
fn polling_sock_diag_sees_a_closed_listener_too() {
    let s = setup();
    let Some(mut l) = Listener::start(s.port, &s.pid_file) else { return };
    let mut p = exaprobe_with(&s, "", &[("EXAPROBE_SOCK_DIAG", "poll")]);
    assert_eq!(p.line(), ANNOUNCE);
    wait_for(&mut p, 0, "dumping the listening sockets every 100ms instead");
    let listen = format!("listen 127.0.0.1:{}", s.port);
    wait_for(&mut p, 0, &watch_line(&listen, "armed (polled every 100ms: EXAPROBE_SOCK_DIAG=poll)"));
    let m = mark(&mut p);
    let t = Instant::now();
    l.say("close");
    let (line, took) = next(&mut p, t);
    assert_eq!(line, WITHDRAW);
    assert!(took < BOUND, "withdrawn {took:?} after the listener closed (polled)");
    wait_for(&mut p, m, &format!("web: event: listener 127.0.0.1:{} closed", s.port));
}

#[test]
fn without_trust_events_the_fall_count_still_applies() {
    let s = setup();
    let Some(mut l) = Listener::start(s.port, &s.pid_file) else { return };
    let mut p = exaprobe(&s, r#", "trust_events": false"#);
    assert_eq!(p.line(), ANNOUNCE);
    let label = format!("pid-file {}", s.pid_file.display());
    wait_for(&mut p, 0, &watch_line(&label, &format!("armed (pid {})", l.child.id())));
    let m = mark(&mut p);
    let t = l.kill();
    // The process and the listener each start a round (FALLING 1/3 and
    // 2/3), then the fast interval takes the third: 200 ms later.
    let (line, took) = next(&mut p, t);
    assert_eq!(line, WITHDRAW);
    assert!(took >= Duration::from_millis(150), "fall 3 was skipped: {took:?}");
    wait_for(&mut p, m, "FALLING(1/3)");
}

#[test]
fn a_maintenance_file_disables_at_once() {
    let s = setup();
    let Some(_l) = Listener::start(s.port, &s.pid_file) else { return };
    let mut p = exaprobe(&s, "");
    assert_eq!(p.line(), ANNOUNCE);
    let label = format!("maintenance-file {}", s.maintenance.display());
    wait_for(&mut p, 0, &watch_line(&label, "armed (absent)"));
    let m = mark(&mut p);
    let t = Instant::now();
    std::fs::write(&s.maintenance, "").unwrap();
    let (line, took) = next(&mut p, t);
    assert_eq!(line, WITHDRAW);
    assert!(took < BOUND, "DISABLED {took:?} after the file appeared");
    wait_for(&mut p, m, "service UP -> DISABLED");
}

#[test]
fn a_watch_that_cannot_be_set_up_is_pending_and_probing_goes_on() {
    let s = setup();
    // No listener, no pid file: the watches wait; the probe still runs.
    let mut p = exaprobe(&s, "");
    let (label, listen) = (format!("pid-file {}", s.pid_file.display()), format!("listen 127.0.0.1:{}", s.port));
    wait_for(&mut p, 0, &watch_line(&label, "pending: no such file (retry every 5s)"));
    wait_for(&mut p, 0, &watch_line(&listen, "absent: no listener yet"));
    assert_eq!(p.line(), WITHDRAW, "the first probe failed: withdrawn");
    // The listener starts: the pid file watch arms without waiting for a retry.
    let m = mark(&mut p);
    let Some(l) = Listener::start(s.port, &s.pid_file) else { return };
    wait_for(&mut p, m, &watch_line(&label, &format!("armed (pid {})", l.child.id())));
    // `exaprobe status` shows each watch and its state.
    wait_for(&mut p, m, &watch_line(&listen, "armed ("));
    let out = std::process::Command::new(harness::EXE)
        .args(["status", "--socket", s.dir.path().join("ctl.sock").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("watch pid-file {}: armed (pid {})", s.pid_file.display(), l.child.id())), "{text}");
    assert!(text.contains("watch maintenance-file"), "{text}");
    assert!(text.contains(&format!("watch listen 127.0.0.1:{}: armed", s.port)), "{text}");
}

/// A private message bus (dbus-daemon) standing in for the system bus.
struct Bus {
    child: Child,
    socket: PathBuf,
}

impl Bus {
    fn start(dir: &Path) -> Option<Bus> {
        let socket = dir.join("bus");
        let conf = dir.join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig><type>session</type>\
                 <listen>unix:path={}</listen><auth>EXTERNAL</auth><policy context=\"default\">\
                 <allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/><allow own=\"*\"/>\
                 </policy></busconfig>",
                socket.display()
            ),
        )
        .unwrap();
        let spawned = Command::new("dbus-daemon")
            .args(["--nofork", "--print-address", &format!("--config-file={}", conf.display())])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                assert!(std::env::var("CI").as_deref() != Ok("true"), "dbus-daemon is needed in CI: {e}");
                eprintln!("skipped: no dbus-daemon ({e})");
                return None;
            }
        };
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        Some(Bus { child, socket })
    }

    fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }

    /// What systemd sends when a unit's ActiveState changes, from the owner
    /// of its bus name (exaprobe listens to nobody else).
    fn emit_active_state(&self, unit_path: &str, state: &str) {
        let props = format!(r#"[["ActiveState", "s", "{state}"], ["SubState", "s", "dead"]]"#);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/events_fake_systemd.py");
        let ok = Command::new("python3")
            .args([script, self.socket.to_str().unwrap(), unit_path, &props])
            .status()
            .expect("python3")
            .success();
        assert!(ok);
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_unit_that_stops_over_d_bus_is_withdrawn_at_once() {
    let s = setup();
    let Some(bus) = Bus::start(s.dir.path()) else { return };
    let Some(mut l) = Listener::start(s.port, &s.pid_file) else { return };
    let conf = s.dir.path().join("unit.json");
    let text = format!(
        r#"{{"control": {{"socket": "{d}/ctl.sock", "state_file": "{d}/state.json"}},
            "services": [{{"name": "nsd", "prefixes": ["198.51.100.1/32"],
            "checks": [{{"type": "tcp", "address": "127.0.0.1:{port}"}}],
            "interval": "10s", "fast_interval": "200ms", "timeout": "1s", "rise": 2, "fall": 3,
            "dampening": false, "watch": {{"unit": "nsd.service"}}}}]}}"#,
        port = s.port,
        d = s.dir.path().display(),
    );
    std::fs::write(&conf, text).unwrap();
    let mut cmd = Command::new(harness::EXE);
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", bus.address()).args([
        "--dry-run",
        "--log-level",
        "debug",
        "--config",
        conf.to_str().unwrap(),
    ]);
    let mut p = Probe::spawn(cmd);
    assert_eq!(p.line(), ANNOUNCE);
    wait_for(&mut p, 0, "nsd: watch unit nsd.service: armed (D-Bus PropertiesChanged)");
    let path = "/org/freedesktop/systemd1/unit/nsd_2eservice";
    // Reloading: the unit is still active and answers; nothing changes.
    bus.emit_active_state(path, "reloading");
    // The service stops: its process is gone, then systemd says so.
    let m = mark(&mut p);
    l.kill();
    let t = Instant::now();
    bus.emit_active_state(path, "deactivating");
    let (line, took) = next(&mut p, t);
    assert_eq!(line, WITHDRAW);
    assert!(took < BOUND, "withdrawn {took:?} after the unit stopped (interval 10 s)");
    wait_for(&mut p, m, "nsd: event: unit nsd.service is deactivating; ");
}

#[test]
fn without_a_system_bus_a_unit_watch_says_so_and_probing_goes_on() {
    let s = setup();
    let Some(_l) = Listener::start(s.port, &s.pid_file) else { return };
    let conf = s.dir.path().join("nobus.json");
    let text = format!(
        r#"{{"control": {{"socket": "{d}/ctl.sock", "state_file": "{d}/state.json"}},
            "services": [{{"name": "nsd", "prefixes": ["198.51.100.1/32"],
            "checks": [{{"type": "tcp", "address": "127.0.0.1:{port}"}}], "rise": 1,
            "watch": {{"unit": "nsd.service"}}}}]}}"#,
        port = s.port,
        d = s.dir.path().display(),
    );
    std::fs::write(&conf, text).unwrap();
    let mut cmd = Command::new(harness::EXE);
    let nowhere = format!("unix:path={}", s.dir.path().join("no-bus").display());
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", nowhere).args(["--dry-run", "--config", conf.to_str().unwrap()]);
    let mut p = Probe::spawn(cmd);
    wait_for(&mut p, 0, "nsd: watch unit nsd.service: off: no system bus");
    assert_eq!(p.line(), ANNOUNCE, "the probes go on");
}

#[test]
fn a_reload_that_adds_a_watch_arms_it() {
    let s = setup();
    let Some(mut l) = Listener::start(s.port, &s.pid_file) else { return };
    // First without watches (and without a maintenance file) …
    let conf = s.dir.path().join("exaprobe.json");
    let write = |watch: &str| {
        let text = format!(
            r#"{{"control": {{"socket": "{d}/ctl.sock", "state_file": "{d}/state.json"}},
                "services": [{{"name": "web", "prefixes": ["198.51.100.1/32"],
                "checks": [{{"type": "tcp", "address": "127.0.0.1:{port}"}}],
                "interval": "10s", "fast_interval": "200ms", "timeout": "1s", "rise": 2, "fall": 3,
                "dampening": false{watch}}}]}}"#,
            port = s.port,
            d = s.dir.path().display(),
        );
        std::fs::write(&conf, text).unwrap();
    };
    write("");
    let mut p = Probe::start(&["--dry-run", "--log-level", "debug", "--config", conf.to_str().unwrap()]);
    assert_eq!(p.line(), ANNOUNCE);
    // … then SIGHUP with a pid-file watch: armed on the running process.
    write(&format!(r#", "watch": {{"pid_file": "{}"}}"#, s.pid_file.display()));
    p.signal("HUP");
    wait_for(&mut p, 0, &format!("web: watch pid-file {}: armed (pid {})", s.pid_file.display(), l.child.id()));
    let t = l.kill();
    let (line, took) = next(&mut p, t);
    assert_eq!(line, WITHDRAW);
    assert!(took < BOUND, "withdrawn {took:?} after kill -9 on a watch added by a reload");
}

/// exaprobe in a user namespace of its own where no inotify instance is
/// left (`max_inotify_instances` 0: what a container host whose
/// `fs.inotify.max_user_instances` is used up gives, EMFILE): it must start,
/// probe and announce, with every watch pending. `None` where user
/// namespaces cannot be created (allowed outside CI only).
fn exaprobe_without_inotify(s: &Setup, watch: &str) -> Option<Probe> {
    let ok = Command::new("unshare")
        .args(["-Ur", "sh", "-c", "echo 0 > /proc/sys/user/max_inotify_instances"])
        .status()
        .is_ok_and(|st| st.success());
    if !ok {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "unshare -Ur is needed in CI");
        eprintln!("skipped: no user namespaces here (unshare -Ur)");
        return None;
    }
    let conf = s.dir.path().join("noinotify.json");
    let text = format!(
        r#"{{"control": {{"socket": "{d}/ctl.sock", "state_file": "{d}/state.json"}},
            "services": [{{"name": "web", "prefixes": ["198.51.100.1/32"],
            "checks": [{{"type": "tcp", "address": "127.0.0.1:{port}"}}],
            "interval": "1s", "rise": 1, "fall": 1, "dampening": false, "disable_file": "{maint}",
            "watch": {watch}}}]}}"#,
        port = s.port,
        maint = s.maintenance.display(),
        d = s.dir.path().display(),
    );
    std::fs::write(&conf, text).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["-Ur", "sh", "-c", "echo 0 > /proc/sys/user/max_inotify_instances && exec \"$0\" \"$@\""]).args([
        harness::EXE,
        "--dry-run",
        "--log-level",
        "debug",
        "--config",
        conf.to_str().unwrap(),
    ]);
    Some(Probe::spawn(cmd))
}

#[test]
fn without_an_inotify_instance_exaprobe_still_probes_and_announces() {
    let s = setup();
    let Some(mut l) = Listener::start(s.port, &s.pid_file) else { return };
    let watch = format!(r#"{{"pid_file": "{}"}}"#, s.pid_file.display());
    let Some(mut p) = exaprobe_without_inotify(&s, &watch) else { return };
    // Before the fix exaprobe exited here, with no route announced.
    assert_eq!(p.line(), ANNOUNCE, "probing goes on without the watcher");
    wait_for(&mut p, 0, "the watcher cannot start (inotify: too many inotify instances");
    let pending = "pending: inotify: too many inotify instances (fs.inotify.max_user_instances) or open files";
    // `status` shows every watch pending (the states come just after the log line).
    let want = [
        format!("watch pid-file {}: {pending}", s.pid_file.display()),
        format!("watch maintenance-file {}: {pending}", s.maintenance.display()),
    ];
    let until = Instant::now() + harness::WAIT;
    loop {
        let out = std::process::Command::new(harness::EXE)
            .args(["status", "--socket", s.dir.path().join("ctl.sock").to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if want.iter().all(|w| text.contains(w.as_str())) {
            break;
        }
        assert!(Instant::now() < until, "status never showed {want:?}:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Polling alone still sees the crash (interval 1 s, fall 1).
    l.kill();
    assert_eq!(p.line(), WITHDRAW);
}
