//! Unbound for the tests: a resolver on a port of 127.0.0.1 of its own, its
//! `server:` clause completed by the test (access control, local data, DoT
//! and DoH ports, stub zones).

use std::net::SocketAddr;
use std::path::Path;

use super::{Server, answers, tool};

/// Unbound on a port of its own with `server_lines` (indented two spaces)
/// added to its `server:` clause and `rest` after it; `port` is the UDP/TCP
/// port (`interface:` lines for other ports are the caller's). `None`
/// (said) if unbound or dig is not installed.
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
    let conf_path = dir.join("unbound.conf");
    std::fs::write(&conf_path, conf).expect("unbound.conf");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let args = ["-d", "-c", conf_path.to_str()?];
    Some(Server::start("unbound", &unbound, &args, dir.join("unbound.log"), addr, || answers(addr, "www.example.test")))
}
