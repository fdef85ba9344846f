//! The harness of the tests in which the test itself is ExaBGP's API
//! process: BIRD and ExaBGP on loopback addresses of the test's own, the
//! test writing commands through exaprobe's [`Writer`] and reading ExaBGP's
//! answers (tests/exabgp_channel.rs, tests/exabgp_accepts.rs).

#![allow(dead_code)] // each test binary uses its own part

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use exaprobe::exabgp::{AckMode, Routed, Stamped, Writer};

/// How long one exchange with ExaBGP may take.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A process started by the test, stopped by its PID when dropped.
pub(crate) struct Owned(pub(crate) Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-s", "TERM", &pid]).status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ExaBGP (with BIRD as its peer) whose API process is the test itself,
/// through two FIFOs: the test's [`Writer`] writes ExaBGP's commands, and
/// ExaBGP's lines come back stamped.
pub(crate) struct ApiProcess {
    /// The writer of commands to ExaBGP.
    pub(crate) writer: Writer<std::fs::File>,
    /// ExaBGP's lines.
    pub(crate) lines: Receiver<Option<Stamped>>,
    // Dropped last: ExaBGP, then BIRD.
    _exabgp: Owned,
    _bird: Owned,
    dir: tempfile::TempDir,
}

impl ApiProcess {
    /// Starts BIRD on 127.0.`net`.1 port `port` and ExaBGP on 127.0.`net`.2
    /// peering with it, ExaBGP's API process being the test.
    pub(crate) fn start(exabgp: &str, name: &str, net: u8, port: u16) -> ApiProcess {
        let dir = tempfile::Builder::new().prefix(&format!("exaprobe-{name}-")).tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("bird.conf"),
            format!(
                "router id 127.0.{net}.1;\nprotocol device {{ scan time 10; }}\n\
                 protocol bgp exa {{ local 127.0.{net}.1 port {port} as 65000; neighbor 127.0.{net}.2 as 65001;\n\
                 strict bind on; passive on; multihop; hold time 30; error wait time 1, 5;\n\
                 ipv4 {{ import all; export none; }}; ipv6 {{ import all; export none; }}; }}\n"
            ),
        )
        .unwrap();
        let bird = Command::new("bird")
            .args(["-f", "-c"])
            .arg(d.join("bird.conf"))
            .arg("-s")
            .arg(d.join("bird.ctl"))
            .arg("-P")
            .arg(d.join("bird.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bird (apt-get install bird2)");
        for fifo in ["to-test", "from-test"] {
            assert!(Command::new("mkfifo").arg(d.join(fifo)).status().unwrap().success());
        }
        std::fs::write(
            d.join("relay.sh"),
            format!("#!/bin/sh\nexec 3<{0}/from-test\ncat <&3 &\nexec cat >{0}/to-test\n", d.display()),
        )
        .unwrap();
        std::fs::write(
            d.join("exabgp.conf"),
            format!(
                "process relay {{\n    run /bin/sh {}/relay.sh;\n    encoder text;\n}}\n\
                 neighbor 127.0.{net}.1 {{\n    router-id 127.0.{net}.2;\n    local-address 127.0.{net}.2;\n\
                 local-as 65001;\n    peer-as 65000;\n    connect {port};\n    hold-time 30;\n\
                 family {{ ipv4 unicast; ipv6 unicast; }}\n\
                 api {{ processes [ relay ]; neighbor-changes; }}\n}}\n",
                d.display()
            ),
        )
        .unwrap();
        let exa = Command::new(exabgp)
            .arg(d.join("exabgp.conf"))
            .current_dir(d)
            .env("exabgp_daemon_daemonize", "false")
            .env("exabgp_daemon_user", "root")
            .env("exabgp_daemon_drop", "false")
            .env("exabgp_log_destination", "stdout")
            .env("exabgp_api_cli", "false")
            .env("exabgp_api_ack", "true")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(d.join("exabgp.log")).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ExaBGP");
        let (exabgp, bird) = (Owned(exa), Owned(bird));
        // Opening a FIFO blocks until the other side opens it: the relay
        // opens both once ExaBGP runs it.
        let to_test = d.join("to-test");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            let input = std::fs::File::open(to_test).unwrap();
            exaprobe::exabgp::read_lines(input, |l| {
                let _ = tx.send(l);
            });
        });
        let out = std::fs::OpenOptions::new().write(true).open(d.join("from-test")).unwrap();
        let writer = Writer::new(out, AckMode::Wait(Duration::from_secs(3))).unwrap();
        ApiProcess { writer, lines, _exabgp: exabgp, _bird: bird, dir }
    }

    /// Feeds ExaBGP's lines to the writer until `stop` says so (or panics
    /// after `WAIT` with what was seen).
    pub(crate) fn pump<T>(
        &mut self,
        what: &str,
        mut stop: impl FnMut(&mut Writer<std::fs::File>, &Routed) -> Option<T>,
    ) -> T {
        let until = Instant::now() + 2 * WAIT;
        let mut seen = Vec::new();
        while Instant::now() < until {
            self.writer.on_tick(Instant::now()).unwrap();
            let routed = match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(Some(line)) => self.writer.on_stdin(line, Instant::now()).unwrap(),
                Ok(None) => panic!("ExaBGP closed the channel while waiting for {what}; seen: {seen:?}"),
                Err(_) => Routed::Taken,
            };
            if let Some(t) = stop(&mut self.writer, &routed) {
                return t;
            }
            seen.push(routed);
        }
        panic!("no {what} within {:?}; seen: {seen:?}", 2 * WAIT);
    }

    /// Feeds ExaBGP's lines to the writer until nothing waits for an ack.
    pub(crate) fn idle(&mut self) {
        self.pump("acks", |w, _| w.is_idle().then_some(()));
    }

    /// BIRD's answer to `birdc ARGS`.
    pub(crate) fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.path().join("bird.ctl"))
            .args(args)
            .output()
            .expect("birdc (apt-get install bird2)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
