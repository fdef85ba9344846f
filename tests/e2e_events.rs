//! End to end, event-driven detection (issue 13): exaprobe under a real
//! ExaBGP (4.2 and 5.0) announcing to BIRD (and FRR), with `--interval 10s` and a
//! pid-file and a listen watch on a service process (python3) of the
//! test's own. After `kill -9` of that process, the route must be gone from
//! BIRD within 1 s (a generous bound; polling alone would take 10 s plus
//! `fall`); scripts/bench-events has the precise figures.
//!
//! `#[ignore]`d like tests/e2e.rs; scripts/test runs them:
//! `cargo test --test e2e_events -- --ignored`.

// Each test binary uses its own part of the shared harness.
#[allow(dead_code)]
#[macro_use]
mod e2e_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_support::{ExaOptions, Harness, Router, V4_PREFIX, Version, secs};

/// The service: listens on the harness's service address and writes its
/// pid file (through a rename), then accepts and closes connections.
const SERVICE: &str = r#"
import os, socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
s.listen(64)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write("%d\n" % os.getpid())
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"#;

struct Service(Child);

impl Service {
    fn start(addr: &str, pid_file: &std::path::Path) -> Service {
        let mut child = Command::new("python3")
            .args(["-c", SERVICE, addr, pid_file.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (the e2e stage needs it)");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        Service(child)
    }

    fn kill(&mut self) -> Instant {
        let at = Instant::now();
        self.0.kill().unwrap();
        self.0.wait().unwrap();
        at
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Within this of the kill, the route must be gone from BIRD.
const BOUND: Duration = Duration::from_secs(1);

e2e! {
    /// kill -9 of the watched process: the route leaves BIRD within 1 s with
    /// `--interval 10s`; the restarted process (a new pid file) brings it back
    /// after rise, and a second kill, on the re-armed watch, withdraws it again.
    fn killed_process_leaves_the_peer_at_once(v: Version, router: Router) {
        let mut h = Harness::with_router("killed_process_leaves_the_peer_at_once", v, router);
        let addr = h.service_addr();
        let pid_file = h.file("service.pid");
        let mut svc = Service::start(&addr, &pid_file);
        let pid_arg = pid_file.display().to_string();
        let args = [
            "--tcp", &addr, "--interval", "10", "--fast-interval", "0.5", "--rise", "2", "--fall", "3",
            "--timeout", "1", "--ip", V4_PREFIX, "--withdraw-on-down",
            "--watch-pid-file", &pid_arg, "--watch-listen", &addr,
        ];
        h.start_exabgp(&args, ExaOptions::default());
        h.wait_route_up(V4_PREFIX, secs(30.0), "announced");
        for round in 1..=2 {
            let killed = svc.kill();
            let gone = h.wait_route_gone(V4_PREFIX, secs(15.0));
            let d = gone - killed;
            h.timing(&format!("kill -9 -> route gone from the peer, --interval 10s (kill {round})"), d);
            assert!(d < BOUND, "gone {:.3} s after kill -9 (interval 10 s, bound 1 s)", d.as_secs_f64());
            svc = Service::start(&addr, &pid_file);
            h.wait_route_up(V4_PREFIX, secs(15.0), "back after rise");
        }
    }
}
