//! A real 3-member etcd cluster on loopback for the fleet tests: a random
//! 127.x.y.z address and ephemeral ports of its own, data in a temp dir,
//! members started, stopped (SIGKILL), paused (SIGSTOP) and resumed by PID,
//! all stopped on drop.
//!
//! [`Cluster::start_tls`] serves the client URLs over TLS with client
//! certificates required (a CA, the members' and a client's certificate made
//! with rcgen, in the temp dir). Health is read on each member's plain
//! metrics URL.
//!
//! Include it with `#[path = "harness/etcd.rs"] mod etcd;`. `etcd` comes
//! from PATH; when it is absent [`Cluster::start`] returns `None` after
//! saying so, unless `CI=true`, where a missing etcd is a failure.

#![allow(dead_code)] // each test binary uses its own part

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The longest the harness waits for the cluster (or a member) to be healthy.
pub(crate) const HEALTHY_WAIT: Duration = Duration::from_secs(20);

/// One member's addresses and process.
struct Member {
    name: String,
    client: String,
    peer: String,
    metrics: String,
    child: Option<Child>,
}

/// The PEM files of a TLS cluster.
#[derive(Clone, Debug)]
pub(crate) struct TlsFiles {
    /// The CA that signed the members' and the client's certificates.
    pub(crate) ca: PathBuf,
    /// A client certificate etcd accepts, and its key.
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
    /// The members' certificate (for every member's address) and key.
    server_cert: PathBuf,
    server_key: PathBuf,
}

/// A running cluster.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
    tls: Option<TlsFiles>,
}

/// A CA and certificates for `ip`, written into `dir`.
fn make_tls(dir: &std::path::Path, ip: &str) -> TlsFiles {
    let params = |names: Vec<String>, cn: &str, ca: bool| {
        let mut p = rcgen::CertificateParams::new(names).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        if ca {
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        p
    };
    let ca = rcgen::CertifiedIssuer::self_signed(
        params(vec![], "exaprobe test etcd CA", true),
        rcgen::KeyPair::generate().unwrap(),
    )
    .unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let issue = |names: Vec<String>, cn: &str, file: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params(names, cn, false).signed_by(&key, &ca).unwrap();
        (write(&format!("{file}.pem"), cert.pem()), write(&format!("{file}-key.pem"), key.serialize_pem()))
    };
    let (server_cert, server_key) = issue(vec![ip.to_string(), "localhost".into()], "etcd", "server");
    let (client_cert, client_key) = issue(vec![], "exaprobe", "client");
    TlsFiles { ca: write("ca.pem", ca.pem()), client_cert, client_key, server_cert, server_key }
}

/// True when `etcd` is on PATH.
fn have_etcd() -> bool {
    Command::new("etcd").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// A random loopback address (127.1-254.x.y), so that parallel tests (and
/// other helpers' servers) do not meet on a port.
fn loopback() -> String {
    let mut b = [0u8; 3];
    getrandom::getrandom(&mut b).unwrap();
    format!("127.{}.{}.{}", b[0] % 254 + 1, b[1], b[2] % 253 + 1)
}

impl Cluster {
    /// Starts a cluster of `n` members and waits until every member is
    /// healthy; `None` (with a message) when etcd is not installed.
    pub(crate) fn start(n: usize) -> Option<Cluster> {
        Cluster::start_with(n, false)
    }

    /// [`Cluster::start`], with TLS and client certificates on the client
    /// URLs (`https://`).
    pub(crate) fn start_tls(n: usize) -> Option<Cluster> {
        Cluster::start_with(n, true)
    }

    fn start_with(n: usize, tls: bool) -> Option<Cluster> {
        if !have_etcd() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "etcd is not installed (CI=true: a skip would hide this test); scripts/install-deps installs it"
            );
            eprintln!("SKIP: etcd is not on PATH (install Debian's etcd-server, or run scripts/install-deps)");
            return None;
        }
        let ip = loopback();
        // Ports chosen by the kernel on our own address; held until all are
        // chosen so that they differ.
        let listeners: Vec<TcpListener> =
            (0..3 * n).map(|_| TcpListener::bind(format!("{ip}:0")).expect("bind a loopback port")).collect();
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
        drop(listeners);
        let scheme = if tls { "https" } else { "http" };
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client: format!("{scheme}://{ip}:{}", ports[3 * i]),
                peer: format!("http://{ip}:{}", ports[3 * i + 1]),
                metrics: format!("http://{ip}:{}", ports[3 * i + 2]),
                child: None,
            })
            .collect();
        let initial_cluster = members.iter().map(|m| format!("{}={}", m.name, m.peer)).collect::<Vec<_>>().join(",");
        let dir = tempfile::tempdir().expect("temp dir");
        let tls = tls.then(|| make_tls(dir.path(), &ip));
        let mut cluster =
            Cluster { dir, members, initial_cluster, token: format!("exaprobe-test-{ip}-{}", ports[0]), tls };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_healthy(i);
        }
        Some(cluster)
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let data = self.dir.path().join(&m.name);
        let log = std::fs::File::create(self.log(i)).expect("etcd log file");
        let mut command = Command::new("etcd");
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let child = command
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &m.client, "--advertise-client-urls", &m.client])
            .args(["--listen-peer-urls", &m.peer, "--initial-advertise-peer-urls", &m.peer])
            .args(["--initial-cluster", &self.initial_cluster, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .args(["--listen-metrics-urls", &m.metrics])
            // Fast elections: a stopped leader is replaced in about a second.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[i].child = Some(child);
    }

    /// Member `i`'s log file.
    pub(crate) fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.members[i].name))
    }

    /// The PEM files, for a TLS cluster.
    pub(crate) fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// Every member's client URL (running or not).
    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client.clone()).collect()
    }

    /// Member `i`'s client URL.
    pub(crate) fn endpoint(&self, i: usize) -> String {
        self.members[i].client.clone()
    }

    /// Member `i`'s PID, while it runs.
    pub(crate) fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// True when member `i` says it is healthy (it has a leader).
    pub(crate) fn healthy(&self, i: usize) -> bool {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(Duration::from_millis(500))).build().into();
        agent
            .get(format!("{}/health", self.members[i].metrics))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .is_some_and(|b| b.contains("\"health\":\"true\""))
    }

    /// Waits (bounded) until member `i` is healthy.
    pub(crate) fn wait_healthy(&self, i: usize) {
        let end = Instant::now() + HEALTHY_WAIT;
        while !self.healthy(i) {
            assert!(
                Instant::now() < end,
                "etcd member {} not healthy after {HEALTHY_WAIT:?}; its log: {}",
                self.members[i].name,
                std::fs::read_to_string(self.log(i)).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The index of the leader (asked of the running members; plain
    /// clusters only).
    pub(crate) fn leader(&self) -> Option<usize> {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(Duration::from_millis(500))).build().into();
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            let Ok(mut r) = agent.post(format!("{}/v3/maintenance/status", m.client)).send("{}") else { continue };
            let Ok(body) = r.body_mut().read_to_string() else { continue };
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let leader = v["leader"].as_str().unwrap_or_default().to_string();
            let me = v["header"]["member_id"].as_str().unwrap_or_default().to_string();
            if !leader.is_empty() && leader == me {
                return Some(i);
            }
        }
        None
    }

    /// Stops member `i` (SIGKILL: as abrupt as a crash) and reaps it.
    pub(crate) fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data (it rejoins the cluster).
    pub(crate) fn restart(&mut self, i: usize) {
        if self.members[i].child.is_none() {
            self.spawn(i);
        }
    }

    /// Freezes member `i` (SIGSTOP): its sockets accept, nothing answers.
    pub(crate) fn pause(&self, i: usize) {
        if let Some(pid) = self.pid(i) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGSTOP);
        }
    }

    /// Thaws member `i` (SIGCONT).
    pub(crate) fn resume(&self, i: usize) {
        if let Some(pid) = self.pid(i) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            // A paused member must be able to die.
            self.resume(i);
            self.stop(i);
        }
    }
}
