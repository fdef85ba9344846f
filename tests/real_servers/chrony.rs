//! chronyd as an NTP server for the tests: its configuration in a temporary
//! directory, never touching the clock (`-x`), optionally with a command
//! socket for `chronyc`; and the check that an NTP server answers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Server, current_user};

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
        let log = dir.join(format!("{name}.log"));
        let server = Server::start("chronyd", chronyd, &args, log, addr, || ntp_answers(addr, client));
        Chrony { server, addr, socket }
    }
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
