//! Helpers of the fleet guard's tests (tests/fleet_random.rs,
//! tests/e2e_fleet.rs): a service that is up or down at will (a TCP
//! listener on a loopback address of its own, opened and closed), and a
//! site's view of one service read from its control socket.
//!
//! Include it with `#[path = "harness/fleet_site.rs"] mod fleet_site;`.

#![allow(dead_code)] // each test binary uses its own part

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use exaprobe::ops::control::{Reply, Request, Status, call};

/// A TCP service that can be failed and recovered: listening (accepting
/// and closing every connection) or not (connections refused).
pub(crate) struct Service {
    addr: SocketAddr,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Service {
    /// A service on an ephemeral port of `ip`, up.
    pub(crate) fn up(ip: &str) -> Service {
        let l = TcpListener::bind(format!("{ip}:0")).expect("bind the service");
        let addr = l.local_addr().unwrap();
        let mut s = Service { addr, running: None };
        s.serve(l);
        s
    }

    /// Its `IP:PORT`.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn is_up(&self) -> bool {
        self.running.is_some()
    }

    fn serve(&mut self, l: TcpListener) {
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let t = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => drop(c),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        self.running = Some((stop, t));
    }

    /// Fails the service: the port refuses connections.
    pub(crate) fn fail(&mut self) {
        if let Some((stop, t)) = self.running.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = t.join();
        }
    }

    /// Recovers it on the same port (std sets SO_REUSEADDR).
    pub(crate) fn recover(&mut self) {
        if self.running.is_none() {
            let l = TcpListener::bind(self.addr).expect("bind the service again");
            self.serve(l);
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.fail();
    }
}

/// One service as a site shows it in `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The last line sent announces the route.
    pub(crate) announcing: bool,
    /// The state is HELD.
    pub(crate) held: bool,
    /// The status' state.
    pub(crate) state: String,
    /// The store is connected.
    pub(crate) connected: bool,
}

/// The status of the exaprobe on `socket`, if it answers.
pub(crate) fn status(socket: &Path) -> Option<Status> {
    match call(socket, &Request::Status {}) {
        Ok(Reply::Status(s)) => Some(s),
        _ => None,
    }
}

/// How the exaprobe on `socket` shows `service`, if it answers.
pub(crate) fn seen(socket: &Path, service: &str) -> Option<Seen> {
    let s = status(socket)?;
    let connected = s.fleet.as_ref().is_some_and(|f| f.connected);
    let svc = s.services.into_iter().find(|x| x.name == service)?;
    let announcing = !svc.last_lines.is_empty() && svc.last_lines.iter().all(|l| l.starts_with("announce"));
    Some(Seen { announcing, held: svc.state == "HELD", state: svc.state, connected })
}

/// A random loopback address 127.1-254.x.y, for a test's own servers.
pub(crate) fn loopback() -> String {
    let mut b = [0u8; 3];
    getrandom::getrandom(&mut b).unwrap();
    format!("127.{}.{}.{}", b[0] % 254 + 1, b[1], b[2] % 253 + 1)
}

/// A site's JSON config: the fleet on `endpoints` as `site`, one service
/// `web` (198.51.100.1/32) whose check is a TCP connect to `check`.
pub(crate) fn config(
    site: &str,
    endpoints: &[String],
    socket: &Path,
    check: SocketAddr,
    ttl: &str,
    extra: &str,
) -> String {
    let etcd: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        r#"{{"fleet": {{"etcd": [{}], "site": "{site}", "min_sites": 1, "ttl": "{ttl}", "timeout": "500ms"}},
  "control": {{"socket": "{}"}},
  "services": [{{"name": "web", "prefixes": ["198.51.100.1/32"], "interval": "500ms", "timeout": "200ms",
    "rise": 1, "fall": 1, "dampening": false, {extra}
    "checks": [{{"type": "tcp", "address": "{check}"}}]}}]}}"#,
        etcd.join(", "),
        socket.display()
    )
}
