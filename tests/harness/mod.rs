//! The harness of the integration tests that run the exaprobe binary under a
//! fake ExaBGP: stdin and stdout are pipes, stdout and stderr are read line
//! by line, waits are bounded polls (tests/cli.rs, tests/faults.rs).

#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) const EXE: &str = env!("CARGO_BIN_EXE_exaprobe");
/// The longest a test waits for one thing.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A running exaprobe with its stdout and stderr read line by line.
pub(crate) struct Probe {
    pub(crate) child: Child,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) stdout: Receiver<String>,
    pub(crate) stderr: Receiver<String>,
    pub(crate) seen_stderr: Vec<String>,
}

pub(crate) fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
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

impl Probe {
    /// Starts exaprobe with stdin and stdout as pipes, as ExaBGP does.
    pub(crate) fn start(args: &[&str]) -> Probe {
        let mut cmd = Command::new(EXE);
        cmd.args(args);
        Probe::spawn(cmd)
    }

    /// Starts `cmd` (exaprobe, or a wrapper that execs it) with stdin and
    /// stdout as pipes.
    pub(crate) fn spawn(mut cmd: Command) -> Probe {
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start exaprobe");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Probe { stdin: child.stdin.take(), child, stdout, stderr, seen_stderr: Vec::new() }
    }

    pub(crate) fn line(&mut self) -> String {
        self.stdout.recv_timeout(WAIT).unwrap_or_else(|_| panic!("no stdout line; stderr:\n{}", self.stderr_text()))
    }

    pub(crate) fn send(&mut self, s: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{s}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    pub(crate) fn stderr_text(&mut self) -> String {
        while let Ok(l) = self.stderr.try_recv() {
            self.seen_stderr.push(l);
        }
        self.seen_stderr.join("\n")
    }

    /// Waits until stderr has a line containing `needle`.
    pub(crate) fn wait_stderr(&mut self, needle: &str) {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            if self.seen_stderr.iter().any(|l| l.contains(needle)) {
                return;
            }
            if let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(50)) {
                self.seen_stderr.push(l);
            }
        }
        panic!("stderr never said {needle:?}:\n{}", self.stderr_text());
    }

    /// Waits for the process to exit; returns its code and how long it took.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> (i32, Duration) {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code().unwrap_or(-1), start.elapsed());
            }
            if start.elapsed() > within {
                panic!("exaprobe did not exit within {within:?}; stderr:\n{}", self.stderr_text());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lines until one contains `needle`; all of them, that one last.
    pub(crate) fn lines_until(&mut self, needle: &str) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            let l = self.line();
            let done = l.contains(needle);
            got.push(l);
            if done {
                return got;
            }
        }
    }

    pub(crate) fn rest_of_stdout(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(l) = self.stdout.recv_timeout(Duration::from_millis(200)) {
            v.push(l);
        }
        v
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args(["-s", sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
