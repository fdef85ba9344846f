//! systemd notification (`sd_notify`), by hand: readiness, status, stopping
//! and watchdog pings, as datagrams to the socket named by `$NOTIFY_SOCKET`.
//!
//! Only for standalone mode (exaprobe run by its own unit with
//! `Type=notify`). Under ExaBGP, `NOTIFY_SOCKET` would belong to ExaBGP's unit
//! if it leaked into our environment, and a `READY=1` from us would lie about
//! ExaBGP: the caller must not notify at all there. The variables are never
//! removed from the environment (that needs `unsafe` since edition 2024);
//! whoever starts child processes can leave them out with
//! `Command::env_remove`.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The variable that names the notification socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (newline-separated `KEY=value` assignments, such as
/// `READY=1`) to the socket named by `$NOTIFY_SOCKET`. Returns whether it was
/// sent: false when the variable is unset (not run by systemd, or not with
/// `Type=notify`) or the send failed (logged at debug level).
pub fn notify(state: &str) -> bool {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else { return false };
    let Some(socket) = socket.to_str() else {
        log::debug!("sd_notify: {NOTIFY_SOCKET} is not UTF-8; not notifying");
        return false;
    };
    match notify_to(socket, state) {
        Ok(()) => true,
        Err(e) => {
            log::debug!("sd_notify: cannot send {state:?} to {socket}: {e}");
            false
        }
    }
}

/// Sends `state` to `socket`, as written in `$NOTIFY_SOCKET`: a path
/// (`/run/systemd/notify`) or an abstract name (`@name`).
pub fn notify_to(socket: &str, state: &str) -> io::Result<()> {
    let addr = if let Some(name) = socket.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes())?
    } else if socket.starts_with('/') {
        SocketAddr::from_pathname(socket)?
    } else {
        // systemd also knows `vsock:`, which only matters inside VMs.
        return Err(io::Error::new(io::ErrorKind::Unsupported, format!("unsupported notify socket {socket:?}")));
    };
    let sock = UnixDatagram::unbound()?;
    // systemd reads the datagram at once; never let a wedged manager stall us.
    sock.set_write_timeout(Some(Duration::from_secs(1)))?;
    let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"));
    }
    Ok(())
}

/// Startup is finished: `READY=1`.
pub fn ready() -> bool {
    notify("READY=1")
}

/// Shutdown has begun: `STOPPING=1`.
pub fn stopping() -> bool {
    notify("STOPPING=1")
}

/// A one-line status for `systemctl status`: `STATUS=…` (newlines become
/// spaces, since a newline would start another assignment).
pub fn status(text: &str) -> bool {
    notify(&format!("STATUS={}", text.replace('\n', " ")))
}

/// Keeps the watchdog happy: `WATCHDOG=1`.
pub fn watchdog_ping() -> bool {
    notify("WATCHDOG=1")
}

/// The watchdog timeout systemd expects pings within, when it watches this
/// process (`WatchdogSec=`): from `$WATCHDOG_USEC`, unless `$WATCHDOG_PID`
/// names another process. Ping at half of it or more often.
pub fn watchdog_interval() -> Option<Duration> {
    let var = |name| std::env::var(name).ok();
    watchdog_interval_from(var("WATCHDOG_USEC").as_deref(), var("WATCHDOG_PID").as_deref(), std::process::id())
}

/// [`watchdog_interval`] with the variables and our pid passed in.
pub fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    // The variables may have been inherited from a parent that systemd
    // watches; WATCHDOG_PID tells whom they are for.
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(my_pid)
    {
        return None;
    }
    Some(Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn to_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1").unwrap();
        assert_eq!(recv(&server), "READY=1");
        notify_to(path.to_str().unwrap(), "STATUS=2 services up\nWATCHDOG=1").unwrap();
        assert_eq!(recv(&server), "STATUS=2 services up\nWATCHDOG=1");
    }

    #[test]
    fn to_an_abstract_name() {
        let name = format!("exaprobe-test-notify-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "WATCHDOG=1").unwrap();
        assert_eq!(recv(&server), "WATCHDOG=1");
    }

    #[test]
    fn errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nobody-listens");
        assert!(notify_to(missing.to_str().unwrap(), "READY=1").is_err());
        let e = notify_to("vsock:2:1234", "READY=1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(notify_to("relative/path", "READY=1").is_err());
    }

    /// Set in the environment of the child that `from_the_environment` runs.
    const CHILD: &str = "EXAPROBE_SDNOTIFY_TEST_CHILD";

    /// Runs this test binary again, for [`child_notifies`] only, with
    /// `NOTIFY_SOCKET` pointing at a socket of ours: the environment is read
    /// as systemd sets it, without `set_var` (unsafe) in this process.
    #[test]
    fn from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "ops::sdnotify::tests::child_notifies", "--test-threads=1"])
            .env(CHILD, "1")
            .env(NOTIFY_SOCKET, &path)
            .env("WATCHDOG_USEC", "2000000")
            .env_remove("WATCHDOG_PID")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(recv(&server), "READY=1");
        assert_eq!(recv(&server), "STATUS=probing 3 services");
        assert_eq!(recv(&server), "WATCHDOG=1");
        assert_eq!(recv(&server), "STOPPING=1");
    }

    /// The child half of [`from_the_environment`]; does nothing on its own.
    #[test]
    fn child_notifies() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        assert!(ready());
        assert!(status("probing\n3 services"));
        assert_eq!(watchdog_interval(), Some(Duration::from_secs(2)));
        assert!(watchdog_ping());
        assert!(stopping());
    }

    #[test]
    fn watchdog_variables() {
        let w = watchdog_interval_from;
        assert_eq!(w(Some("30000000"), None, 7), Some(Duration::from_secs(30)));
        assert_eq!(w(Some("30000000"), Some("7"), 7), Some(Duration::from_secs(30)));
        assert_eq!(w(Some("30000000"), Some("8"), 7), None, "meant for another process");
        assert_eq!(w(Some("0"), None, 7), None);
        assert_eq!(w(Some("soon"), None, 7), None);
        assert_eq!(w(None, Some("7"), 7), None);
        assert_eq!(w(Some("30000000"), Some("x"), 7), None);
    }
}
