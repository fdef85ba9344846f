//! Real DNS servers for the tests (NSD, Knot, Unbound, and nginx in front
//! of Unbound's DoH), each on a loopback port of its own with its config in
//! a temporary directory, run in the foreground as the current user and
//! stopped by PID; and the real clients (dig, kdig, curl) as referees, their
//! output parsed.
//!
//! A missing binary skips the test with a message, except under `CI=true`,
//! where it fails it: CI installs them all (`scripts/install-deps`).

#![allow(dead_code)] // each test uses its own part

use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The longest a server gets to start answering.
const START: Duration = Duration::from_secs(15);

/// The binary `name`, if installed; `None` (with a message) to skip the
/// test, or a panic under `CI=true`.
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().map(PathBuf::from).collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(found);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{name} is not installed, and CI must have it (scripts/install-deps installs it)");
    }
    eprintln!("SKIP: {name} is not installed (scripts/install-deps installs it)");
    None
}

/// All of `names`, or `None` if one is missing.
pub(crate) fn tools(names: &[&str]) -> Option<Vec<PathBuf>> {
    names.iter().map(|n| tool(n)).collect()
}

/// A loopback port free for both UDP and TCP just now, and not handed out
/// before by this process (a server started later binds it, so the kernel
/// could offer it again meanwhile).
pub(crate) fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
}

/// A running server, stopped (SIGTERM, then SIGKILL) by PID when dropped.
pub(crate) struct Server {
    child: Child,
    name: &'static str,
    /// Its address (UDP and TCP, unless its config says otherwise).
    pub(crate) addr: SocketAddr,
    /// Where its config, zones and logs are.
    pub(crate) dir: PathBuf,
}

impl Server {
    /// Starts `argv` with its output in `dir/NAME.log`, and waits until
    /// `ready` says yes.
    pub(crate) fn start(
        name: &'static str,
        argv: &[&str],
        dir: &Path,
        addr: SocketAddr,
        ready: impl Fn() -> bool,
    ) -> Server {
        let log = fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let mut server = Server { child, name, addr, dir: dir.to_path_buf() };
        let deadline = Instant::now() + START;
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("{name} exited ({status}) before answering:\n{}", server.log());
            }
            if ready() {
                return server;
            }
            assert!(Instant::now() < deadline, "{name} did not answer within {START:?}:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its log so far.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.join(format!("{}.log", self.name))).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True once a DNS server at `addr` answers a query over UDP (any rcode).
pub(crate) fn answers(addr: SocketAddr, name: &str) -> bool {
    Dig::run("dig", &[&format!("@{}", addr.ip()), "-p", &addr.port().to_string(), name, "+time=1", "+tries=1"])
        .status
        .is_some()
}

/// A zone file for `origin` with a SOA, an NS, `www` A 192.0.2.1, and
/// `big`: TXT records of 1200 bytes in all (over UDP's 512 without EDNS,
/// within dig's 1232 with it).
pub(crate) fn zone(origin: &str, serial: u32) -> String {
    let mut z = format!(
        "$ORIGIN {origin}.\n$TTL 3600\n@ SOA ns1 hostmaster {serial} 3600 900 604800 300\n@ NS ns1\n\
         ns1 A 127.0.0.1\nwww A 192.0.2.1\n"
    );
    for i in 0..12 {
        z.push_str(&format!("big TXT \"{i:02}{}\"\n", "x".repeat(78)));
    }
    z
}

/// NSD serving `example.test` from `dir`, with this NSID and identity, and
/// response rate limiting off (Debian's NSD has it on: 200 replies a second
/// per source, the rest dropped or truncated, which a benchmark exceeds).
pub(crate) fn nsd(dir: &Path, nsid: &str, identity: &str) -> Option<Server> {
    let nsd = tool("nsd")?;
    tool("dig")?;
    let port = free_port();
    let d = dir.display();
    fs::write(dir.join("example.test.zone"), zone("example.test", 1)).unwrap();
    let hex: String = nsid.bytes().map(|b| format!("{b:02x}")).collect();
    let conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  \
         zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
         xfrdir: \"{d}\"\n  zonelistfile: \"{d}/zone.list\"\n  server-count: 1\n  verbosity: 1\n  \
         identity: \"{identity}\"\n  nsid: \"{hex}\"\n  hide-identity: no\n  \
         rrl-ratelimit: 0\n\
         remote-control:\n  control-enable: no\n\
         zone:\n  name: example.test\n  zonefile: example.test.zone\n"
    );
    fs::write(dir.join("nsd.conf"), conf).unwrap();
    let conf = dir.join("nsd.conf");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    Some(Server::start("nsd", &[nsd.to_str()?, "-d", "-c", conf.to_str()?], dir, addr, || {
        answers(addr, "www.example.test")
    }))
}

/// Knot serving `example.test` from `dir` with this NSID, signing it
/// itself (automatic DNSSEC signing, keys in `dir`) if `sign`.
pub(crate) fn knot(dir: &Path, nsid: &str, sign: bool) -> Option<Server> {
    let knotd = tool("knotd")?;
    tool("dig")?;
    let port = free_port();
    let d = dir.display();
    fs::write(dir.join("example.test.zone"), zone("example.test", 1)).unwrap();
    let signing = if sign { "    dnssec-signing: on\n" } else { "" };
    let conf = format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\n    nsid: \"{nsid}\"\n    identity: \"{nsid}\"\n\
         database:\n    storage: \"{d}\"\n\
         log:\n  - target: stderr\n    any: info\n\
         template:\n  - id: default\n    storage: \"{d}\"\n    file: \"%s.zone\"\n    zonefile-sync: -1\n\
         zone:\n  - domain: example.test\n{signing}"
    );
    fs::write(dir.join("knot.conf"), conf).unwrap();
    let conf = dir.join("knot.conf");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // Signed, it is ready once the DNSKEY is served.
    let ready = || {
        let dig =
            Dig::run("dig", &["@127.0.0.1", "-p", &port.to_string(), "example.test", "DNSKEY", "+time=1", "+tries=1"]);
        dig.status.as_deref() == Some("NOERROR") && (!sign || !dig.answer.is_empty())
    };
    Some(Server::start("knot", &[knotd.to_str()?, "-c", conf.to_str()?], dir, addr, ready))
}

/// Unbound on a port of its own with `server_lines` (indented two spaces)
/// added to its `server:` clause and `rest` after it; `port` is the UDP/TCP
/// port (`interface:` lines for other ports are the caller's).
pub(crate) fn unbound(dir: &Path, port: u16, server_lines: &str, rest: &str) -> Option<Server> {
    let unbound = tool("unbound")?;
    tool("dig")?;
    let d = dir.display();
    let conf = format!(
        "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  \
         directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n  \
         num-threads: 1\n  so-reuseport: no\n  do-not-query-localhost: no\n  verbosity: 1\n  \
         module-config: \"validator iterator\"\n{server_lines}\
         remote-control:\n  control-enable: no\n{rest}"
    );
    fs::write(dir.join("unbound.conf"), conf).unwrap();
    let conf = dir.join("unbound.conf");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    Some(Server::start("unbound", &[unbound.to_str()?, "-d", "-c", conf.to_str()?], dir, addr, || {
        answers(addr, "www.example.test")
    }))
}

/// A self-signed certificate for `name` (CN and subjectAltName), made by
/// openssl in `dir`: `(cert.pem, key.pem)`.
pub(crate) fn certificate(dir: &Path, name: &str) -> Option<(PathBuf, PathBuf)> {
    let openssl = tool("openssl")?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}"), "-addext", &format!("subjectAltName=DNS:{name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    Some((cert, key))
}

/// nginx terminating TLS (HTTP/1.1) for `name` on `port` and passing
/// `/dns-query` to an HTTP/2 cleartext DoH server (Unbound's `https-port`
/// with `http-notls-downstream`) at `upstream`.
pub(crate) fn nginx_doh(dir: &Path, port: u16, cert: &Path, key: &Path, upstream: SocketAddr) -> Option<Server> {
    let nginx = tool("nginx")?;
    let d = dir.join("nginx");
    fs::create_dir_all(&d).unwrap();
    let dd = d.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dd}/nginx.pid;\nerror_log {dd}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dd}/body;\n  proxy_temp_path {dd}/proxy;\n  \
         fastcgi_temp_path {dd}/fcgi;\n  uwsgi_temp_path {dd}/uwsgi;\n  scgi_temp_path {dd}/scgi;\n  \
         server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    \
         location /dns-query {{ grpc_pass grpc://{upstream}; }}\n  }}\n}}\n",
        cert.display(),
        key.display()
    );
    let conf_path = d.join("nginx.conf");
    fs::write(&conf_path, conf).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    Some(Server::start("nginx", &[nginx.to_str()?, "-c", conf_path.to_str()?, "-p", d.to_str()?], dir, addr, || {
        std::net::TcpStream::connect(addr).is_ok()
    }))
}

/// A dig or kdig reply, as printed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dig {
    /// `NOERROR`, `REFUSED`, …; `None` if no reply was printed.
    pub(crate) status: Option<String>,
    /// The header flags (`qr`, `aa`, `rd`, `ad`, `tc`, …).
    pub(crate) flags: Vec<String>,
    /// The question count.
    pub(crate) qdcount: Option<u32>,
    /// The answer section's lines.
    pub(crate) answer: Vec<String>,
    /// The NSID as text.
    pub(crate) nsid: Option<String>,
    /// All of the output, for messages.
    pub(crate) text: String,
}

impl Dig {
    /// Runs `client` (dig or kdig) with `args` and parses what it printed.
    pub(crate) fn run(client: &str, args: &[&str]) -> Dig {
        let out = Command::new(client).args(args).output().unwrap_or_else(|e| panic!("{client}: {e}"));
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Dig::parse(&text)
    }

    fn parse(text: &str) -> Dig {
        let mut dig = Dig { text: text.to_string(), ..Dig::default() };
        let mut in_answer = false;
        for line in text.lines() {
            if let Some(rest) = line.split_once("status: ").map(|(_, r)| r) {
                dig.status = rest.split([',', ';']).next().map(|s| s.trim().to_string());
            }
            let lower = line.to_ascii_lowercase();
            if let Some(rest) = lower.strip_prefix(";; flags:") {
                let flags = rest.split(';').next().unwrap_or("");
                dig.flags = flags.split_whitespace().map(str::to_string).collect();
                dig.qdcount = rest
                    .split_once("query: ")
                    .and_then(|(_, r)| r.split([',', ';']).next())
                    .and_then(|n| n.trim().parse().ok());
            }
            if line.contains("NSID:") {
                dig.nsid = line.split('"').nth(1).map(str::to_string);
            }
            if line.starts_with(";; ANSWER SECTION:") {
                in_answer = true;
                continue;
            }
            if in_answer {
                if line.trim().is_empty() || line.starts_with(";;") {
                    in_answer = false;
                } else {
                    dig.answer.push(line.to_string());
                }
            }
        }
        dig
    }

    /// Whether the header has `flag`.
    pub(crate) fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

#[test]
fn dig_and_kdig_output_parses() {
    let dig = Dig::parse(
        ";; ->>HEADER<<- opcode: QUERY, status: REFUSED, id: 1\n;; flags: qr rd; QUERY: 0, ANSWER: 0, AUTHORITY: 0\n\
         ; NSID: 6e 73 31 (\"ns1\")\n",
    );
    assert_eq!((dig.status.as_deref(), dig.qdcount, dig.nsid.as_deref()), (Some("REFUSED"), Some(0), Some("ns1")));
    assert!(dig.has("qr") && !dig.has("aa"));
    let kdig = Dig::parse(
        ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 2\n;; Flags: qr aa rd; QUERY: 1; ANSWER: 1\n\
         ;; NSID: 6B6E6F74 \"knot\"\n\n;; ANSWER SECTION:\nwww.example.test. 3600 IN A 192.0.2.1\n\n",
    );
    assert_eq!((kdig.status.as_deref(), kdig.qdcount, kdig.nsid.as_deref()), (Some("NOERROR"), Some(1), Some("knot")));
    assert!(kdig.has("aa"));
    assert_eq!(kdig.answer, ["www.example.test. 3600 IN A 192.0.2.1"]);
}
