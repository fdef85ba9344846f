//! The channel to ExaBGP through the binary, when ExaBGP misbehaves: it
//! stops reading our stdout (the pipe fills), or writes an endless line on
//! our stdin. exaprobe must still obey SIGTERM and the end of stdin, and
//! keep its memory bounded.
//!
//! Waits are bounded polls; the bounds are generous (a blocked exaprobe
//! would never exit at all).

mod api_process;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_exaprobe");
const WAIT: Duration = Duration::from_secs(10);

/// One service whose 3000 IPv6 prefixes give ~200 KB of announce lines:
/// three times what a pipe holds.
fn many_prefixes(dir: &std::path::Path) -> std::path::PathBuf {
    let prefixes: Vec<String> = (1..=3000).map(|i| format!("\"2001:db8::{i:x}/128\"")).collect();
    let conf = dir.join("many.json");
    std::fs::write(
        &conf,
        format!(
            r#"{}, "services": [{{"name": "many", "prefixes": [{}], "next_hop6": "2001:db8:ffff::1"}}]}}"#,
            control(dir),
            prefixes.join(", ")
        ),
    )
    .unwrap();
    conf
}

/// The start of a config whose control socket is the test's own.
fn control(dir: &std::path::Path) -> String {
    format!(r#"{{"control": {{"socket": "{0}/ctl.sock", "state_file": "{0}/state.json"}}"#, dir.display())
}

struct Stuck {
    child: Child,
    /// Held, never read until the test says so: ExaBGP stopped reading.
    stdout: Option<ChildStdout>,
    stderr: Receiver<String>,
    seen: Vec<String>,
}

impl Stuck {
    fn start(args: &[&str]) -> Stuck {
        let mut child = Command::new(EXE)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start exaprobe");
        let (tx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Stuck { stdout: child.stdout.take(), child, stderr, seen: Vec::new() }
    }

    fn wait_stderr(&mut self, needle: &str) {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            if self.seen.iter().any(|l| l.contains(needle)) {
                return;
            }
            if let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(l);
            }
        }
        let short: Vec<String> = self.seen.iter().map(|l| l.chars().take(200).collect()).collect();
        panic!("stderr never said {needle:?}:\n{}", short.join("\n"));
    }

    fn wait_exit(&mut self, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return start.elapsed();
            }
            assert!(start.elapsed() < within, "exaprobe did not exit within {within:?} (blocked writing stdout?)");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything exaprobe wrote, read after it exited.
    fn stdout_text(&mut self) -> String {
        let mut s = String::new();
        self.stdout.take().unwrap().read_to_string(&mut s).unwrap();
        s
    }
}

impl Drop for Stuck {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_whole_announce_lines(text: &str) {
    assert!(!text.is_empty() && text.ends_with('\n'), "a partial last line");
    for l in text.lines() {
        assert!(l.starts_with("announce route 2001:db8::") && l.ends_with(" med 100"), "not a whole line: {l:?}");
    }
}

#[test]
fn sigterm_wins_over_a_full_stdout_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let conf = many_prefixes(dir.path());
    let mut p = Stuck::start(&["--config", conf.to_str().unwrap(), "--no-ack"]);
    p.wait_stderr("many: UP: announcing");
    let kill = Command::new("kill").args(["-s", "TERM", &p.child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let took = p.wait_exit(WAIT);
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    let text = p.stdout_text();
    assert_whole_announce_lines(&text);
    assert!(text.lines().count() < 3000, "the pipe was never full?");
}

#[test]
fn end_of_stdin_wins_over_a_full_stdout_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let conf = many_prefixes(dir.path());
    let mut p = Stuck::start(&["--config", conf.to_str().unwrap(), "--no-ack"]);
    p.wait_stderr("many: UP: announcing");
    drop(p.child.stdin.take());
    p.wait_exit(WAIT);
    assert_whole_announce_lines(&p.stdout_text());
}

/// An endless line on stdin (64 MiB, no newline) is discarded; the lines
/// after it are read (`shutdown` makes exaprobe exit), and its memory stays
/// far below the line's size.
#[test]
fn a_huge_stdin_line_is_discarded_and_later_lines_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("one.json");
    let text =
        format!(r#"{}, "services": [{{"name": "one", "prefixes": ["198.51.100.1/32"]}}]}}"#, control(dir.path()));
    std::fs::write(&conf, text).unwrap();
    let mut p = Stuck::start(&["--config", conf.to_str().unwrap(), "--no-ack"]);
    let out = lines(p.stdout.take().unwrap());
    assert!(out.recv_timeout(WAIT).unwrap().starts_with("announce route 198.51.100.1/32"));
    let mut stdin = p.child.stdin.take().unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..64 {
        stdin.write_all(&chunk).unwrap();
    }
    stdin.write_all(b"\n").unwrap();
    stdin.flush().unwrap();
    p.wait_stderr("discarded a line of 67108864 bytes");
    let rss = vm_rss_kib(p.child.id());
    assert!(rss < 32 * 1024, "RSS {rss} KiB after a 64 MiB line");
    stdin.write_all(b"shutdown 1 2\n").unwrap();
    p.wait_exit(WAIT);
}

fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------
// The channel's library side against a real ExaBGP (4.2.25 and 5.0.15) and a
// real BGP peer (BIRD 2, RIB-only, loopback 127.0.41.1 <- 127.0.41.2, port
// 17941). ExaBGP's process is `relay.sh`, which joins the process's stdin and
// stdout to two FIFOs that this test holds: the test is the API process.
// Ignored: run with `EXAPROBE_EXABGP4`/`EXAPROBE_EXABGP5` set (scripts/install-deps),
// `cargo test --test exabgp_channel -- --ignored`.

use exaprobe::exabgp::adj_rib::{self, Intended, Reason};
use exaprobe::exabgp::{Incoming, Routed};

use api_process::ApiProcess as Real;

impl Real {
    fn adj_rib_out(&mut self) -> Vec<adj_rib::Advertised> {
        assert!(self.writer.query(adj_rib::QUERY.into(), Instant::now()).unwrap());
        let answer = self.pump("the answer to the query", |_, r| match r {
            Routed::Answer(a) => Some(a.clone()),
            _ => None,
        });
        assert!(answer.ok && answer.complete && answer.behind == 0, "{answer:?}");
        adj_rib::parse(&answer.lines)
    }
}

fn verify_and_repair(exabgp_env: &str) {
    let Ok(exabgp) = std::env::var(exabgp_env) else {
        panic!("{exabgp_env} is not set: run scripts/install-deps and export what it prints");
    };
    let mut x = Real::start(&exabgp, "channel", 41, 17941);
    x.pump("the session to come up", |_, r| match r {
        Routed::Event(Incoming::Neighbor(l)) if l.ends_with(" up") => Some(()),
        _ => None,
    });
    let service: exaprobe::model::service::Attributes = exaprobe::model::service::Attributes {
        med: Some(100),
        communities: exaprobe::model::bgp::parse_list("65000:2 65000:1").unwrap(),
        ..Default::default()
    };
    let intended: Vec<Intended> = ["198.51.100.1/32", "198.51.100.2/32"]
        .iter()
        .map(|p| Intended {
            neighbors: vec![],
            prefix: p.parse().unwrap(),
            path_id: None,
            announce: Some(("self".parse().unwrap(), service.clone())),
        })
        .collect();
    for i in &intended {
        x.writer.send(i.line(), None, Instant::now()).unwrap();
    }
    x.idle();
    assert_eq!(adj_rib::diff(&intended, &x.adj_rib_out()), [], "as announced");
    // Someone withdraws one behind our back.
    x.writer.send("withdraw route 198.51.100.2/32".into(), None, Instant::now()).unwrap();
    x.idle();
    let repairs = adj_rib::diff(&intended, &x.adj_rib_out());
    assert_eq!(repairs.len(), 1, "{repairs:?}");
    assert_eq!((repairs[0].reason, repairs[0].line.as_str()), (Reason::Missing, intended[1].line().as_str()));
    for r in repairs {
        x.writer.send(r.line, None, Instant::now()).unwrap();
    }
    x.idle();
    assert_eq!(adj_rib::diff(&intended, &x.adj_rib_out()), [], "repaired");
    let c = x.writer.counters();
    assert_eq!((c.error, c.missing, c.stray), (0, 0, 0), "{c:?}");
    assert_eq!(c.done, 7, "4 routes commands and 3 queries, each acked once: {c:?}");
}

#[test]
#[ignore = "needs ExaBGP and BIRD: run scripts/test"]
fn adj_rib_out_is_verified_and_repaired_exabgp4() {
    verify_and_repair("EXAPROBE_EXABGP4");
}

#[test]
#[ignore = "needs ExaBGP and BIRD: run scripts/test"]
fn adj_rib_out_is_verified_and_repaired_exabgp5() {
    verify_and_repair("EXAPROBE_EXABGP5");
}
