//! `exaprobe drill` against a real exaprobe (single-service mode, --dry-run,
//! with a control socket): it refuses a service that is not UP, undrains
//! after --for, undrains on SIGINT, and reports what its witness saw. The
//! witness reads the dry run's stdout (a file), so it sees exactly what
//! ExaBGP would be told: "site-a" while announced, "elsewhere" while the
//! GRACEFUL_SHUTDOWN announcement is out, a failure once withdrawn.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_exaprobe");
const WAIT: Duration = Duration::from_secs(10);

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// exaprobe probing `test -e DIR/ok`, its ExaBGP lines in DIR/out.
    fn start(healthy: bool) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        if healthy {
            File::create(dir.path().join("ok")).unwrap();
        }
        let check = format!("test -e {}", dir.path().join("ok").display());
        let child = Command::new(EXE)
            .args(["--dry-run", "--name", "web", "--ip", "198.51.100.1/32", "--cmd", &check])
            .args(["--interval", "200ms", "--fast-interval", "100ms", "--rise", "1", "--fall", "1"])
            .args(["--drain-duration", "300ms", "--control-socket"])
            .arg(dir.path().join("ctl.sock"))
            .stdin(Stdio::null())
            .stdout(File::create(dir.path().join("out")).unwrap())
            .stderr(File::create(dir.path().join("err")).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon { child, dir };
        if healthy {
            d.wait_for(|out| out.lines().count() >= 1, "the first line");
        }
        d
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("ctl.sock")
    }

    fn out(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out")).unwrap_or_default()
    }

    fn wait_for(&self, f: impl Fn(&str) -> bool, what: &str) {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            if f(&self.out()) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let err = std::fs::read_to_string(self.dir.path().join("err")).unwrap_or_default();
        panic!("no {what}; stdout:\n{}\nstderr:\n{err}", self.out());
    }

    /// The witness: the last line exaprobe sent decides the answer.
    fn witness(&self) -> String {
        format!(
            "case $(tail -n1 {}) in *withdraw*) exit 1;; *65535:0*) echo elsewhere;; *) echo site-a;; esac",
            self.dir.path().join("out").display()
        )
    }

    fn drained(&self) -> bool {
        let out = ctl(&self.socket(), &["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        !v["services"][0]["drained"].is_null()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(EXE).args(args).arg("--socket").arg(socket).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn refuses_a_service_that_is_not_up_and_bad_flags() {
    let d = Daemon::start(false);
    let until = Instant::now() + WAIT;
    loop {
        let out = ctl(&d.socket(), &["status", "--json"]);
        if serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok_and(|v| v["services"][0]["state"] == "DOWN") {
            break;
        }
        assert!(Instant::now() < until, "not DOWN: {}", String::from_utf8_lossy(&out.stdout));
        thread::sleep(Duration::from_millis(20));
    }
    let out = ctl(&d.socket(), &["drill", "web", "--for", "1s", "--before", "0s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to drill web") && err.contains("not UP"), "{err}");
    assert!(!d.drained(), "nothing drained");
    let out = ctl(&d.socket(), &["drill", "nope", "--for", "1s"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service \"nope\""));
    let out = ctl(&d.socket(), &["drill", "web", "--rate", "1000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rate"));
}

#[test]
fn drains_watches_and_undrains_after_for_with_a_report() {
    let d = Daemon::start(true);
    let w = d.witness();
    let t = Instant::now();
    let out = ctl(&d.socket(), &["drill", "web", "--for", "1s", "--before", "500ms", "--rate", "20", "--witness", &w]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(t.elapsed() >= Duration::from_millis(2000), "before + for + after");
    assert!(!d.drained(), "undrained after --for");
    // The staged drain, then the announcement back.
    let lines: Vec<String> = d.out().lines().map(String::from).collect();
    let gs = lines.iter().position(|l| l.contains("65535:0")).expect("GRACEFUL_SHUTDOWN sent");
    assert!(lines[gs + 1].starts_with("withdraw"), "{lines:?}");
    assert_eq!(lines.last().unwrap(), "announce route 198.51.100.1/32 next-hop self med 100");
    for want in [
        "baseline answer: \"site-a\"",
        "answered from elsewhere",
        ": \"elsewhere\"",
        "site back",
        "it answered again",
        "undrained",
    ] {
        assert!(text.contains(want), "{want:?} missing in:\n{text}");
    }
    // With the drain stage at 300 ms, the witness (20/s) saw the withdraw as lost answers.
    let lost: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("  answers lost during and after the drain: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(lost >= 2, "{text}");

    let out = ctl(
        &d.socket(),
        &["drill", "web", "--for", "500ms", "--before", "300ms", "--rate", "20", "--witness", &w, "--json"],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["baseline"], "site-a");
    assert_eq!(v["elsewhere"], "elsewhere");
    assert_eq!(v["answered_again"], true);
    assert_eq!(v["undrained"], true);
    assert!(v["first_elsewhere_ms"].as_f64().unwrap() < 1000.0);
    assert!(v["during"]["lost"].as_u64().unwrap() >= 1);
    assert_eq!(v["before"]["lost"], 0);
}

#[test]
fn undrains_on_sigint() {
    let d = Daemon::start(true);
    let mut drill = Command::new(EXE)
        .args(["drill", "web", "--for", "60s", "--before", "0s", "--socket"])
        .arg(d.socket())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + WAIT;
    while !d.drained() {
        assert!(Instant::now() < until, "the drill did not drain");
        thread::sleep(Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(drill.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let until = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = drill.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < until, "the drill did not stop on SIGINT");
        thread::sleep(Duration::from_millis(20));
    };
    let out = drill.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(status.code(), Some(1), "interrupted is a failure: {text}");
    assert!(text.contains("interrupted") && text.contains("undrained"), "{text}");
    assert!(!d.drained(), "undrained on SIGINT");
    d.wait_for(
        |o| o.lines().last() == Some("announce route 198.51.100.1/32 next-hop self med 100"),
        "the announce back",
    );
}
