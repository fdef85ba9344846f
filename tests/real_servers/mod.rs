//! Real servers for the probe tests: nginx and chronyd started as the
//! current user in the foreground on a loopback address of their own, with
//! their configuration, logs and pid files in a temporary directory, stopped
//! by PID when dropped; certificates made with `openssl`; the referees
//! (`curl`, `chronyc`, the Monitoring Plugins) found on the PATH.
//!
//! A missing binary skips the test that needs it, with a message, except
//! under `CI=true`, where it fails the test: CI installs everything
//! (`scripts/install-deps`), so a skip there would hide a gap.

#![allow(dead_code, reason = "each test file uses part of the helpers")]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Directories searched for server binaries and plugins besides the PATH.
const EXTRA_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/lib/nagios/plugins"];

/// The path of `name`, or `None` (after saying so) when it is not
/// installed. Panics under `CI=true`.
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is not installed, and CI=true: scripts/install-deps installs it"
        );
        eprintln!("SKIP: {name} is not installed (scripts/install-deps installs it)");
    }
    // Debian's chronyd refuses to start unless root ("Not superuser"), -x
    // or not; run as root, it is then told to stay so (see Chrony::start).
    if name == "chronyd" && found.is_some() && !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chronyd runs only as root, and CI=true: run the suite as root (as the e2e tests need too)"
        );
        eprintln!("SKIP: chronyd runs only as root");
        return None;
    }
    found
}

/// All of `names`, or `None` if one is missing (each missing one said).
pub(crate) fn tools<const N: usize>(names: [&str; N]) -> Option<[PathBuf; N]> {
    let found: Vec<Option<PathBuf>> = names.iter().map(|n| tool(n)).collect();
    if found.iter().any(Option::is_none) {
        return None;
    }
    Some(std::array::from_fn(|i| found[i].clone().unwrap_or_default()))
}

/// A random address in 127.0.0.0/8 (not 127.0.0.1), so that parallel tests
/// and other programs on the host do not meet.
pub(crate) fn loopback() -> Ipv4Addr {
    let mut b = [0u8; 3];
    getrandom::getrandom(&mut b).expect("randomness");
    Ipv4Addr::new(127, b[0].max(1), b[1], b[2].clamp(2, 254))
}

/// A port free on `ip` for TCP (and UDP when `udp`), from the kernel's
/// ephemeral range.
pub(crate) fn free_port(ip: Ipv4Addr, udp: bool) -> u16 {
    for _ in 0..50 {
        let port = TcpListener::bind((ip, 0)).expect("bind").local_addr().expect("addr").port();
        if !udp || UdpSocket::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip}");
}

/// Runs a command to completion, with its output.
pub(crate) fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{program:?}: {e}"))
}

/// Runs a command that must succeed.
pub(crate) fn run_ok(program: &Path, args: &[&str]) -> Output {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program:?} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A server process, killed (by its PID) and reaped when dropped.
pub(crate) struct Server {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Server {
    /// The server's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it now.
    pub(crate) fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Panics with the log if the server has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Server {
    /// Starts any server that listens on TCP `addr`, and waits until it
    /// accepts connections.
    pub(crate) fn start_tcp(
        name: &'static str,
        program: &Path,
        args: &[&str],
        log: PathBuf,
        addr: SocketAddr,
    ) -> Server {
        let mut server = spawn(name, program, args, log);
        wait_for(&mut server, || TcpStream::connect(addr).is_ok());
        server
    }
}

fn spawn(name: &'static str, program: &Path, args: &[&str], log: PathBuf) -> Server {
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("{program:?}: {e}"));
    Server { child, name, log }
}

/// Waits (at most 10 s) until `ready` holds, failing with the server's log.
fn wait_for(server: &mut Server, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !ready() {
        server.assert_running();
        assert!(Instant::now() < until, "{} not ready after 10 s:\n{}", server.name, server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// nginx with the given `server { … }` blocks, each listening on
/// `ip:PORT` of the `ports` it is given.
pub(crate) struct Nginx {
    /// The process.
    pub(crate) server: Server,
    /// Its address.
    pub(crate) ip: Ipv4Addr,
}

impl Nginx {
    /// Starts nginx in `dir` with these server blocks (inside `http {}`),
    /// and waits until every port of `ports` on `ip` accepts connections.
    pub(crate) fn start(nginx: &Path, dir: &Path, ip: Ipv4Addr, ports: &[u16], servers: &str) -> Nginx {
        let d = dir.display();
        let conf = format!(
            "error_log {d}/nginx-error.log info;\n\
             events {{ worker_connections 64; }}\n\
             worker_processes 1;\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
               uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
               default_type text/plain;\n\
               {servers}\n\
             }}\n"
        );
        std::fs::create_dir_all(dir.join("tmp")).expect("tmp dir");
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).expect("nginx.conf");
        let global = format!("daemon off; master_process off; pid {d}/nginx.pid;");
        let args = [
            "-p",
            &format!("{d}/"),
            "-c",
            path.to_str().expect("utf-8 path"),
            "-g",
            &global,
            "-e",
            &format!("{d}/nginx-error.log"),
        ];
        let mut server = spawn("nginx", nginx, &args, dir.join("nginx.out"));
        for &port in ports {
            wait_for(&mut server, || TcpStream::connect((ip, port)).is_ok());
        }
        Nginx { server, ip }
    }
}

/// A chronyd on `ip:port`, its own configuration in `dir` (with `name` in
/// its file names), never touching the clock (`-x`).
pub(crate) struct Chrony {
    /// The process.
    pub(crate) server: Server,
    /// Its NTP address.
    pub(crate) addr: SocketAddr,
    /// Its command socket, when it has one (for `chronyc -h`).
    pub(crate) socket: Option<PathBuf>,
}

impl Chrony {
    /// Starts chronyd with `extra` configuration lines (its `allow` lines
    /// among them), a command socket in `dir` when `cmd_socket`, and waits
    /// until it answers NTP queries from `client`.
    pub(crate) fn start(
        chronyd: &Path,
        dir: &Path,
        name: &str,
        addr: SocketAddr,
        cmd_socket: bool,
        client: Ipv4Addr,
        extra: &str,
    ) -> Chrony {
        let d = dir.display();
        let socket = cmd_socket.then(|| dir.join(format!("{name}.sock")));
        // chronyd refuses a command socket in a directory others can enter.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let cmd = match &socket {
            Some(s) => format!("bindcmdaddress {}\n", s.display()),
            None => "cmdport 0\n".to_string(),
        };
        let conf = format!(
            "port {port}\nbindaddress {ip}\n{cmd}pidfile {d}/{name}.pid\ndriftfile {d}/{name}.drift\n{extra}\n",
            port = addr.port(),
            ip = addr.ip(),
        );
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, conf).expect("chrony.conf");
        // As the current user (root: see `tool`): chronyd would otherwise
        // switch to its packaged user, which cannot reach the temporary
        // directory.
        let user = current_user();
        let args = ["-x", "-d", "-u", &user, "-f", path.to_str().expect("utf-8")];
        let mut server = spawn("chronyd", chronyd, &args, dir.join(format!("{name}.log")));
        wait_for(&mut server, || ntp_answers(addr, client));
        Chrony { server, addr, socket }
    }
}

/// NSD serving one zone (`example.test`, with `www` at 192.0.2.1) on
/// `addr`, for the DNS plugins.
pub(crate) struct Nsd {
    /// The process.
    pub(crate) server: Server,
}

impl Nsd {
    /// Starts NSD in `dir` and waits until it accepts TCP on `addr`.
    pub(crate) fn start(nsd: &Path, dir: &Path, addr: SocketAddr) -> Nsd {
        let d = dir.display();
        std::fs::write(
            dir.join("example.test.zone"),
            "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\n\
             ns IN A 192.0.2.53\nwww IN A 192.0.2.1\n",
        )
        .expect("zone");
        let conf = format!(
            "server:\n  ip-address: {ip}@{port}\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  \
             pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  zonelistfile: \"{d}/zone.list\"\n  \
             xfrdfile: \"{d}/xfrd.state\"\n  logfile: \"{d}/nsd.log\"\n  server-count: 1\n\
             remote-control:\n  control-enable: no\nzone:\n  name: example.test\n  zonefile: example.test.zone\n",
            ip = addr.ip(),
            port = addr.port(),
        );
        let path = dir.join("nsd.conf");
        std::fs::write(&path, conf).expect("nsd.conf");
        let mut server = spawn("nsd", nsd, &["-d", "-c", path.to_str().expect("utf-8")], dir.join("nsd.out"));
        wait_for(&mut server, || TcpStream::connect(addr).is_ok());
        Nsd { server }
    }
}

/// The name of the user running the tests.
fn current_user() -> String {
    let out = run(Path::new("/usr/bin/id"), &["-un"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// True if an NTP server answers a client request from `client` at `addr`
/// (whatever it says).
pub(crate) fn ntp_answers(addr: SocketAddr, client: Ipv4Addr) -> bool {
    let Ok(s) = UdpSocket::bind((IpAddr::from(client), 0)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut req = [0u8; 48];
    req[0] = 0x23;
    req[40] = 1;
    if s.send_to(&req, addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 128];
    s.recv_from(&mut buf).is_ok()
}

/// Certificates made with openssl in a directory: a private CA, server
/// certificates it issues (valid, expired, not yet valid, wrong name), a
/// self-signed one, one from an unknown CA, and client certificates (one
/// from the CA, one from another).
pub(crate) struct Pki {
    /// The directory holding every file.
    pub(crate) dir: PathBuf,
    openssl: PathBuf,
}

/// The name every server certificate is for (`.test`: reserved, never
/// resolves).
pub(crate) const NAME: &str = "www.example.test";

impl Pki {
    /// Makes the CA and every certificate in `dir`.
    pub(crate) fn new(openssl: &Path, dir: &Path) -> Pki {
        let pki = Pki { dir: dir.to_path_buf(), openssl: openssl.to_path_buf() };
        pki.ca("ca");
        pki.ca("other-ca");
        let san = format!("subjectAltName=DNS:{NAME}");
        pki.issue("ca", "server", NAME, &san, None);
        pki.issue("ca", "expired", NAME, &san, Some(("20200101000000Z", "20210101000000Z")));
        pki.issue("ca", "future", NAME, &san, Some(("20990101000000Z", "20991231000000Z")));
        pki.issue("ca", "wrong-name", "other.example.test", "subjectAltName=DNS:other.example.test", None);
        pki.issue("other-ca", "unknown-ca", NAME, &san, None);
        pki.issue("ca", "client", "exaprobe-client", "extendedKeyUsage=clientAuth", None);
        pki.issue("other-ca", "stranger", "stranger-client", "extendedKeyUsage=clientAuth", None);
        run_ok(
            openssl,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                &format!("/CN={NAME}"),
                "-addext",
                &san,
                "-keyout",
                pki.path("self-signed.key").to_str().unwrap_or_default(),
                "-out",
                pki.path("self-signed.pem").to_str().unwrap_or_default(),
            ],
        );
        pki
    }

    /// A file of the directory, as a string.
    pub(crate) fn file(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn ca(&self, name: &str) {
        let (key, pem) = (self.file(&format!("{name}.key")), self.file(&format!("{name}.pem")));
        run_ok(
            &self.openssl,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                &format!("/CN=exaprobe test {name}"),
                "-keyout",
                &key,
                "-out",
                &pem,
            ],
        );
        // `openssl ca`, which alone sets arbitrary validity dates in
        // OpenSSL 3.0, keeps a database.
        let db = self.path(&format!("{name}-db"));
        std::fs::create_dir_all(&db).expect("ca db");
        std::fs::write(db.join("index.txt"), "").expect("index");
        std::fs::write(db.join("serial"), "1000\n").expect("serial");
        let cnf = format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {db}/index.txt\nnew_certs_dir = {db}\nserial = {db}/serial\n\
             default_md = sha256\npolicy = p\nunique_subject = no\ncopy_extensions = none\ndefault_days = 30\n\
             [p]\ncommonName = supplied\n",
            db = db.display()
        );
        std::fs::write(db.join("ca.cnf"), cnf).expect("ca.cnf");
    }

    fn issue(&self, ca: &str, name: &str, cn: &str, ext: &str, dates: Option<(&str, &str)>) {
        let (key, csr, pem, extfile) = (
            self.file(&format!("{name}.key")),
            self.file(&format!("{name}.csr")),
            self.file(&format!("{name}.pem")),
            self.file(&format!("{name}.ext")),
        );
        std::fs::write(&extfile, format!("{ext}\n")).expect("ext");
        run_ok(
            &self.openssl,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        let cnf = self.file(&format!("{ca}-db/ca.cnf"));
        let (ca_pem, ca_key) = (self.file(&format!("{ca}.pem")), self.file(&format!("{ca}.key")));
        let mut args = vec![
            "ca", "-batch", "-notext", "-config", &cnf, "-cert", &ca_pem, "-keyfile", &ca_key, "-in", &csr, "-out",
            &pem, "-extfile", &extfile,
        ];
        if let Some((start, end)) = dates {
            args.extend(["-startdate", start, "-enddate", end]);
        }
        run_ok(&self.openssl, &args);
    }
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub(crate) fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
    path.display().to_string()
}
