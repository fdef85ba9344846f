//! Fault injection against the real binary: each test is one way the
//! promises broke before (issue 9), run as a hostile operator, a
//! misbehaving ExaBGP or a flood would, and asserting that the promise now
//! holds. Waits are bounded polls; figures live in the benchmarks.

use std::io::Write;
use std::net::TcpListener;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

mod harness;

use harness::{EXE, Probe as Exaprobe};

/// A loopback listener that accepts and closes, until dropped (then the
/// port is closed: connects are refused).
struct Listener {
    addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

fn listener() -> Listener {
    use std::sync::atomic::{AtomicBool, Ordering};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let theirs = std::sync::Arc::clone(&stop);
    let thread = thread::spawn(move || {
        while !theirs.load(Ordering::Relaxed) {
            if l.accept().is_err() {
                thread::sleep(Duration::from_millis(5));
            }
        }
    });
    Listener { addr, stop, thread: Some(thread) }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn service(name: &str, prefixes: &[&str], check: &str, extra: &str) -> String {
    let prefixes: Vec<String> = prefixes.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "{{\"name\": \"{name}\", \"prefixes\": [{}], \"checks\": [{check}], \"interval\": \"1s\", \"fast_interval\": \
         \"500ms\", \"timeout\": \"500ms\", \"rise\": 1, \"fall\": 1, \"dampening\": false{extra}}}",
        prefixes.join(", ")
    )
}

fn tcp(addr: &str) -> String {
    format!("{{\"type\": \"tcp\", \"address\": \"{addr}\"}}")
}

fn config(dir: &std::path::Path, services: &[String]) -> std::path::PathBuf {
    let path = dir.join("exaprobe.json");
    let text = format!(
        "{{\"control\": {{\"socket\": \"{}\"}}, \"services\": [{}]}}",
        dir.join("ctl.sock").display(),
        services.join(", ")
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Issue 9.1: a SIGHUP that moves a prefix to a service listed earlier, and a
/// removed service's prefix to a kept one, writes no withdraw of a prefix
/// whose (new) owner is UP.
#[test]
fn a_reload_that_moves_prefixes_never_withdraws_them() {
    let dir = tempfile::tempdir().unwrap();
    let up = listener();
    let c = tcp(&up.addr);
    let path = config(
        dir.path(),
        &[
            service("a", &["198.51.100.1/32"], &c, ""),
            service("b", &["198.51.100.2/32", "198.51.100.3/32"], &c, ""),
            service("c", &["198.51.100.4/32"], &c, ""),
        ],
    );
    let mut p = Exaprobe::start(&["--config", path.to_str().unwrap(), "--no-ack"]);
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(p.line());
    }
    assert!(seen.iter().all(|l| l.starts_with("announce")), "{seen:?}");
    config(
        dir.path(),
        &[
            service("a", &["198.51.100.1/32", "198.51.100.3/32", "198.51.100.4/32"], &c, ""),
            service("b", &["198.51.100.2/32"], &c, ""),
        ],
    );
    p.signal("HUP");
    p.wait_stderr("config reloaded");
    // Let a few probe rounds pass: nothing changes for any of the routes.
    thread::sleep(Duration::from_millis(2500));
    p.signal("TERM");
    // Nothing between the reload and SIGTERM; then only the final
    // withdraws, one per prefix.
    let after = p.rest_of_stdout();
    let mut withdrawn: Vec<&str> = after.iter().map(|l| l.trim_start_matches("withdraw route ")).collect();
    withdrawn.sort();
    assert_eq!(withdrawn, ["198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32", "198.51.100.4/32"], "{after:?}");
}

/// Issue 9.2: SIGTERM while withdraws wait behind a command ExaBGP never
/// acked: every route that may be announced is withdrawn before exit.
#[test]
fn sigterm_withdraws_what_waits_behind_an_unacked_command() {
    let dir = tempfile::tempdir().unwrap();
    let up = listener();
    let path = config(
        dir.path(),
        &[
            service("up", &["198.51.100.1/32", "198.51.100.2/32"], &tcp(&up.addr), ""),
            service("down", &["198.51.100.3/32"], &tcp("127.0.0.1:9"), ""),
        ],
    );
    // Acks are awaited (60 s) and never sent: only the first line goes out.
    let mut p = Exaprobe::start(&["--config", path.to_str().unwrap(), "--ack-timeout", "60s"]);
    let first = p.line();
    p.wait_stderr("down: DOWN: withdrawing");
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(2)).0, 0);
    let mut rest = p.rest_of_stdout();
    rest.sort();
    let want: Vec<String> = ["198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32"]
        .iter()
        .map(|p| format!("withdraw route {p}"))
        .collect();
    assert_eq!(rest, want, "first line was {first:?}");
}

/// Issue 9.6: 200 services whose checks hang until their timeout delay
/// nobody: a dead TCP service's route still leaves within a few probe
/// intervals.
#[test]
fn hung_checks_do_not_delay_another_service() {
    let dir = tempfile::tempdir().unwrap();
    let up = listener();
    let mut services: Vec<String> = (1..=200)
        .map(|i| {
            format!(
                r#"{{"name": "hung{i}", "prefixes": ["2001:db8:{i:x}::/48"], "next_hop6": "2001:db8::1",
                   "checks": [{{"type": "command", "argv": ["sleep", "30"]}}], "interval": "5s",
                   "fast_interval": "1s", "timeout": "4s", "rise": 1, "fall": 1, "dampening": false}}"#
            )
        })
        .collect();
    services.push(service("web", &["198.51.100.80/32"], &tcp(&up.addr), ""));
    let path = config(dir.path(), &services);
    let mut p = Exaprobe::start(&["--config", path.to_str().unwrap(), "--no-ack"]);
    p.lines_until("198.51.100.80/32");
    let addr = up.addr.clone();
    drop(up);
    let t = Instant::now();
    let lines = p.lines_until("withdraw route 198.51.100.80/32");
    let took = t.elapsed();
    // interval 1 s, fall 1: about a second; generous bound.
    assert!(took < Duration::from_secs(5), "web ({addr}) withdrawn after {took:?}: {lines:?}");
}

/// A flood on stdin (a misbehaving ExaBGP) keeps memory bounded, and
/// SIGTERM still ends the process at once.
#[test]
fn a_stdin_flood_is_bounded_and_sigterm_still_wins() {
    let dir = tempfile::tempdir().unwrap();
    let up = listener();
    let path = config(dir.path(), &[service("web", &["198.51.100.1/32"], &tcp(&up.addr), "")]);
    let mut p = Exaprobe::start(&["--config", path.to_str().unwrap()]);
    let mut stdin = p.stdin.take().unwrap();
    let flood = thread::spawn(move || {
        let chunk = "done\n".repeat(20_000);
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            if stdin.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    });
    thread::sleep(Duration::from_secs(3));
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.child.id())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(rss_kib < 200 * 1024, "RSS {rss_kib} KiB under a stdin flood");
    let t = Instant::now();
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(2)).0, 0);
    assert!(t.elapsed() < Duration::from_secs(1), "exit took {:?}", t.elapsed());
    let _ = flood.join();
}

/// Command checks without root: `--user nobody` runs the check as nobody,
/// with no new privileges (the check itself asserts both); the JSON
/// `run_as` does the same, and a user that does not exist is an error of
/// `exaprobe check` at its path.
#[test]
fn command_checks_run_as_the_configured_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: run_as needs root, and the suite runs as root in CI");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().expect("a nobody user");
    let check = format!("test \"$(id -u)\" = {} && grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status", nobody.uid);
    let mut p = Exaprobe::start(&[
        "--dry-run",
        "--name",
        "web",
        "--ip",
        "198.51.100.1/32",
        "--rise",
        "1",
        "--interval",
        "1",
        "--user",
        "nobody",
        "--cmd",
        &check,
    ]);
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100");

    let dir = tempfile::tempdir().unwrap();
    let cmd = format!(r#"{{"type": "command", "shell": "{}"}}"#, check.replace('"', "\\\""));
    let path = config(dir.path(), &[service("web", &["198.51.100.2/32"], &cmd, r#", "run_as": {"user": "nobody"}"#)]);
    let mut p = Exaprobe::start(&["--config", path.to_str().unwrap(), "--no-ack"]);
    assert_eq!(p.line(), "announce route 198.51.100.2/32 next-hop self med 100");

    let bad =
        config(dir.path(), &[service("web", &["198.51.100.2/32"], &cmd, r#", "run_as": {"user": "no-such-user-x"}"#)]);
    let out = Command::new(EXE).args(["check", "--config", bad.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("services[0].run_as.user"), "{text}");
}

/// SIGUSR1 and SIGUSR2 used to kill exaprobe without a withdraw: they are
/// ignored now; SIGQUIT withdraws and exits, as SIGTERM does.
#[test]
fn sigusr1_is_ignored_and_sigquit_withdraws() {
    let up = listener();
    let check = format!("{} ", up.addr);
    let mut p = Exaprobe::start(&[
        "--name",
        "web",
        "--ip",
        "198.51.100.1/32",
        "--rise",
        "1",
        "--no-ack",
        "--tcp",
        check.trim(),
    ]);
    assert!(p.line().starts_with("announce route 198.51.100.1/32"));
    p.signal("USR1");
    p.signal("USR2");
    p.wait_stderr("SIGUSR2: ignored");
    assert!(p.child.try_wait().unwrap().is_none(), "SIGUSR1/SIGUSR2 ended exaprobe");
    p.signal("QUIT");
    assert_eq!(p.wait_exit(Duration::from_secs(2)).0, 0);
    assert_eq!(p.rest_of_stdout(), ["withdraw route 198.51.100.1/32"]);
}
