//! NSD for the tests: one configuration (the test zone `example.test`, an
//! NSID and identity, response rate limiting off, everything in the test's
//! directory, foreground), started for the DNS probe's tests on 127.0.0.1
//! or for the DNS plugins on any address.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

use super::{Server, answers, local_port, tool, zone};

/// NSD serving `example.test` (see [`zone`]) on `addr`, for the DNS
/// plugins.
pub(crate) struct Nsd {
    /// The process.
    pub(crate) server: Server,
}

impl Nsd {
    /// Starts NSD in `dir` and waits until it accepts TCP on `addr`.
    pub(crate) fn start(nsd: &Path, dir: &Path, addr: SocketAddr) -> Nsd {
        let conf = config(dir, addr, "exaprobe", "exaprobe");
        let args = ["-d", "-c", conf.to_str().expect("utf-8")];
        let server = Server::start("nsd", nsd, &args, dir.join("nsd.log"), addr, || TcpStream::connect(addr).is_ok());
        Nsd { server }
    }
}

/// NSD serving `example.test` from `dir` on a port of 127.0.0.1 of its own,
/// with this NSID and identity, ready once it answers `dig`; `None` (said)
/// if NSD or dig is not installed.
pub(crate) fn nsd(dir: &Path, nsid: &str, identity: &str) -> Option<Server> {
    let nsd = tool("nsd")?;
    tool("dig")?;
    let addr: SocketAddr = ([127, 0, 0, 1], local_port()).into();
    let conf = config(dir, addr, nsid, identity);
    let args = ["-d", "-c", conf.to_str()?];
    Some(Server::start("nsd", &nsd, &args, dir.join("nsd.log"), addr, || answers(addr, "www.example.test")))
}

/// Writes the zone and `nsd.conf` into `dir` for a server on `addr` with
/// this NSID and identity, and response rate limiting off (Debian's NSD has
/// it on: 200 replies a second per source, the rest dropped or truncated,
/// which a benchmark exceeds); returns the configuration's path.
fn config(dir: &Path, addr: SocketAddr, nsid: &str, identity: &str) -> PathBuf {
    let d = dir.display();
    std::fs::write(dir.join("example.test.zone"), zone("example.test", 1)).expect("zone");
    let hex: String = nsid.bytes().map(|b| format!("{b:02x}")).collect();
    let (ip, port) = (addr.ip(), addr.port());
    let conf = format!(
        "server:\n  ip-address: {ip}@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  \
         zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
         xfrdir: \"{d}\"\n  zonelistfile: \"{d}/zone.list\"\n  server-count: 1\n  verbosity: 1\n  \
         identity: \"{identity}\"\n  nsid: \"{hex}\"\n  hide-identity: no\n  \
         rrl-ratelimit: 0\n\
         remote-control:\n  control-enable: no\n\
         zone:\n  name: example.test\n  zonefile: example.test.zone\n"
    );
    let path = dir.join("nsd.conf");
    std::fs::write(&path, conf).expect("nsd.conf");
    path
}
