//! Unit watches over D-Bus: a minimal, hand-written client of the system
//! bus (no D-Bus crate: four messages out, one kind of signal in).
//!
//! It connects to the bus (`DBUS_SYSTEM_BUS_ADDRESS` when it is a
//! `unix:path=`, else [`SYSTEM_BUS`]), authenticates with EXTERNAL (the
//! uid), says Hello, asks systemd to send unit signals (Manager.Subscribe:
//! without a subscriber systemd emits none; an error reply, e.g. where no
//! systemd runs, is ignored), and adds one match per watched unit on
//! `PropertiesChanged` of the unit's object path, sent by systemd (the
//! owner of `org.freedesktop.systemd1`: any local user may send such a
//! signal). A signal whose changed properties carry `ActiveState` tells the
//! watcher the unit's new state.
//!
//! Where no system bus exists, a unit watch is off and says so once (the
//! other sources keep working); it is looked for again every
//! [`super::NO_BUS_EVERY`].
//!
//! Bounds: a message is at most [`MAX_MESSAGE`] bytes (a larger one drops
//! the connection, which is then set up again), containers nest at most
//! [`MAX_DEPTH`] deep.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the system bus listens.
pub(super) const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

/// The largest message read (the D-Bus limit is 128 MiB; systemd's unit
/// signals are a few KiB).
pub(super) const MAX_MESSAGE: usize = 1 << 20;

/// Deepest nesting of containers parsed.
pub(super) const MAX_DEPTH: usize = 32;

/// The bus's socket: `DBUS_SYSTEM_BUS_ADDRESS` (its `unix:path=`) or the
/// default; `None` when there is none.
pub(super) fn address() -> Option<PathBuf> {
    if let Ok(a) = std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
        let path = a.split(';').find_map(|t| t.strip_prefix("unix:path=")).map(|p| p.split(',').next().unwrap_or(p));
        return path.map(PathBuf::from).filter(|p| p.exists());
    }
    Some(PathBuf::from(SYSTEM_BUS)).filter(|p| p.exists())
}

/// Why a unit watch is off when there is no bus.
pub(super) fn no_bus() -> String {
    match std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
        Ok(a) => format!("off: no system bus at DBUS_SYSTEM_BUS_ADDRESS={a}"),
        Err(_) => format!("off: no system bus ({SYSTEM_BUS} is absent)"),
    }
}

/// systemd's object path of a unit: every byte but `[A-Za-z0-9]` as `_xx`.
pub(super) fn unit_path(unit: &str) -> String {
    let mut p = String::from("/org/freedesktop/systemd1/unit/");
    for b in unit.bytes() {
        if b.is_ascii_alphanumeric() {
            p.push(char::from(b));
        } else {
            p.push_str(&format!("_{b:02x}"));
        }
    }
    p
}

/// A connection to the bus.
pub(super) struct Bus {
    stream: UnixStream,
    buf: Vec<u8>,
    serial: u32,
    /// Set up: reads are non-blocking from then on.
    ready: bool,
}

impl Bus {
    /// Connects, authenticates and says Hello (blocking, at most a second
    /// each step), then turns non-blocking.
    pub(super) fn connect(path: &Path) -> Result<Bus, String> {
        let fail = |what: &str, e: io::Error| format!("system bus {}: {what}: {e}", path.display());
        let mut stream = UnixStream::connect(path).map_err(|e| fail("connect", e))?;
        stream.set_read_timeout(Some(Duration::from_secs(1))).map_err(|e| fail("connect", e))?;
        let uid: String = rustix::process::getuid().as_raw().to_string().bytes().map(|b| format!("{b:02x}")).collect();
        stream.write_all(format!("\0AUTH EXTERNAL {uid}\r\n").as_bytes()).map_err(|e| fail("auth", e))?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") && line.len() < 512 {
            stream.read_exact(&mut byte).map_err(|e| fail("auth", e))?;
            line.push(byte[0]);
        }
        if !line.starts_with(b"OK ") {
            return Err(format!("system bus {}: EXTERNAL authentication refused", path.display()));
        }
        stream.write_all(b"BEGIN\r\n").map_err(|e| fail("auth", e))?;
        let mut bus = Bus { stream, buf: Vec::new(), serial: 0, ready: false };
        bus.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", "org.freedesktop.DBus", None)
            .map_err(|e| fail("Hello", e))?;
        bus.call(
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "Subscribe",
            "org.freedesktop.systemd1",
            None,
        )
        .map_err(|e| fail("Subscribe", e))?;
        bus.stream.set_nonblocking(true).map_err(|e| fail("connect", e))?;
        bus.ready = true;
        Ok(bus)
    }

    /// Asks for the `PropertiesChanged` signals of `unit`, from systemd
    /// only: any local user may send such a signal, and the bus routes it
    /// to us only if it comes from the owner of `org.freedesktop.systemd1`.
    pub(super) fn watch_unit(&mut self, unit: &str) -> Result<(), String> {
        let rule = format!(
            "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.DBus.Properties',\
             member='PropertiesChanged',path='{}'",
            unit_path(unit)
        );
        self.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "org.freedesktop.DBus", Some(&rule))
            .map_err(|e| format!("system bus: AddMatch: {e}"))
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    fn call(&mut self, path: &str, iface: &str, member: &str, dest: &str, arg: Option<&str>) -> io::Result<()> {
        self.serial += 1;
        let msg = method_call(self.serial, path, iface, member, dest, arg);
        // Writes are small and rare; a socket that cannot take them at once
        // is waited for, briefly.
        self.stream.set_nonblocking(false)?;
        self.stream.set_write_timeout(Some(Duration::from_secs(1)))?;
        let written = self.stream.write_all(&msg);
        if self.ready {
            self.stream.set_nonblocking(true)?;
        }
        written
    }

    /// The (object path, ActiveState) of the signals received since the
    /// last call; `Err` when the connection is gone or broken.
    pub(super) fn read(&mut self) -> Result<Vec<(String, String)>, String> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("system bus: connection closed".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("system bus: {e}")),
            }
            if self.buf.len() > 2 * MAX_MESSAGE {
                break;
            }
        }
        let mut out = Vec::new();
        loop {
            match message_len(&self.buf)? {
                Some(len) if len <= self.buf.len() => {
                    let msg: Vec<u8> = self.buf.drain(..len).collect();
                    if let Some(change) = active_state(&msg) {
                        out.push(change);
                    }
                }
                _ => return Ok(out),
            }
        }
    }
}

// ---------------------------------------------------------------- marshalling

/// A little-endian D-Bus message being written.
struct W(Vec<u8>);

impl W {
    fn align(&mut self, n: usize) {
        while !self.0.len().is_multiple_of(n) {
            self.0.push(0);
        }
    }
    fn u32(&mut self, v: u32) {
        self.align(4);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    fn signature(&mut self, s: &str) {
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
    }
    fn field(&mut self, code: u8, ty: &str, value: &str) {
        self.align(8);
        self.0.push(code);
        self.signature(ty);
        if ty == "g" { self.signature(value) } else { self.string(value) }
    }
}

/// A METHOD_CALL with no body or one string argument.
fn method_call(serial: u32, path: &str, iface: &str, member: &str, dest: &str, arg: Option<&str>) -> Vec<u8> {
    let mut body = W(Vec::new());
    if let Some(a) = arg {
        body.string(a);
    }
    // NO_REPLY_EXPECTED (0x1): the replies (and errors) are not needed.
    let mut w = W(vec![b'l', 1, 0x1, 1]);
    w.u32(body.0.len() as u32);
    w.u32(serial);
    let len_at = w.0.len();
    w.u32(0);
    w.align(8);
    let start = w.0.len();
    w.field(1, "o", path);
    w.field(2, "s", iface);
    w.field(3, "s", member);
    w.field(6, "s", dest);
    if arg.is_some() {
        w.field(8, "g", "s");
    }
    let fields = (w.0.len() - start) as u32;
    w.0[len_at..len_at + 4].copy_from_slice(&fields.to_le_bytes());
    w.align(8);
    w.0.extend_from_slice(&body.0);
    w.0
}

// ---------------------------------------------------------------- parsing

/// A message being read.
struct R<'a> {
    b: &'a [u8],
    pos: usize,
    little: bool,
}

type P<T> = Option<T>;

impl R<'_> {
    fn align(&mut self, n: usize) -> P<()> {
        let to = self.pos.div_ceil(n) * n;
        (to <= self.b.len()).then(|| self.pos = to)
    }
    fn take(&mut self, n: usize) -> P<&[u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u32(&mut self) -> P<u32> {
        self.align(4)?;
        let s: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(if self.little { u32::from_le_bytes(s) } else { u32::from_be_bytes(s) })
    }
    fn string(&mut self) -> P<String> {
        let n = self.u32()? as usize;
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.take(1)?;
        Some(s)
    }
    fn signature(&mut self) -> P<String> {
        let n = usize::from(*self.take(1)?.first()?);
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.take(1)?;
        Some(s)
    }

    /// Skips one value of the single complete type `sig`.
    fn skip(&mut self, sig: &[u8], depth: usize) -> P<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match *sig.first()? {
            b'y' => self.take(1).map(drop),
            b'n' | b'q' => self.align(2).and_then(|()| self.take(2).map(drop)),
            b'b' | b'i' | b'u' | b'h' => self.align(4).and_then(|()| self.take(4).map(drop)),
            b'x' | b't' | b'd' => self.align(8).and_then(|()| self.take(8).map(drop)),
            b's' | b'o' => self.string().map(drop),
            b'g' => self.signature().map(drop),
            b'v' => {
                let inner = self.signature()?;
                self.skip(inner.as_bytes(), depth + 1)
            }
            b'a' => {
                let n = self.u32()? as usize;
                self.align(alignment(*sig.get(1)?))?;
                self.take(n).map(drop)
            }
            b'(' | b'{' => {
                // A whole container type, its closer included: an outsider's
                // "(" or "{" alone is no type (and no panic).
                if sig.len() < 2 || one_type(sig)? != sig.len() {
                    return None;
                }
                self.align(8)?;
                let mut rest = &sig[1..sig.len() - 1];
                while !rest.is_empty() {
                    let l = one_type(rest)?;
                    self.skip(&rest[..l], depth + 1)?;
                    rest = &rest[l..];
                }
                Some(())
            }
            _ => None,
        }
    }
}

fn alignment(t: u8) -> usize {
    match t {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b'h' | b's' | b'o' | b'a' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1,
    }
}

/// The length of the first single complete type of `sig`.
fn one_type(sig: &[u8]) -> P<usize> {
    match *sig.first()? {
        b'a' => Some(1 + one_type(&sig[1..])?),
        open @ (b'(' | b'{') => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut i = 1;
            while *sig.get(i)? != close {
                i += one_type(&sig[i..])?;
            }
            Some(i + 1)
        }
        _ => Some(1),
    }
}

/// The whole length of the message at the start of `buf`, once its fixed
/// header is there.
fn message_len(buf: &[u8]) -> Result<Option<usize>, String> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let little = match buf[0] {
        b'l' => true,
        b'B' => false,
        _ => return Err("system bus: not a D-Bus message".into()),
    };
    let mut r = R { b: buf, pos: 4, little };
    let body = r.u32().unwrap_or(0) as usize;
    r.pos = 12;
    let fields = r.u32().unwrap_or(0) as usize;
    let len = (16 + fields).div_ceil(8) * 8 + body;
    if len > MAX_MESSAGE {
        return Err(format!("system bus: a message of {len} bytes (at most {MAX_MESSAGE})"));
    }
    Ok(Some(len))
}

/// The (path, ActiveState) of a `PropertiesChanged` signal that carries one.
fn active_state(msg: &[u8]) -> Option<(String, String)> {
    let little = msg[0] == b'l';
    if msg.get(1) != Some(&4) {
        return None; // not a signal
    }
    let mut r = R { b: msg, pos: 12, little };
    let fields_len = r.u32()? as usize;
    let end = 16 + fields_len;
    let (mut path, mut member, mut sig) = (None, None, None);
    while r.pos < end {
        r.align(8)?;
        let code = *r.take(1)?.first()?;
        let ty = r.signature()?;
        match (code, ty.as_str()) {
            (1, "o") => path = Some(r.string()?),
            (3, "s") => member = Some(r.string()?),
            (8, "g") => sig = Some(r.signature()?),
            (_, t) => r.skip(t.as_bytes(), 0)?,
        }
    }
    if member.as_deref() != Some("PropertiesChanged") || sig.as_deref() != Some("sa{sv}as") {
        return None;
    }
    r.pos = end;
    r.align(8)?;
    let body = r.pos;
    // Offsets in the body count from the message start, which is 8-aligned.
    let mut b = R { b: msg, pos: body, little };
    b.string()?; // the interface
    let n = b.u32()? as usize;
    b.align(8)?;
    let dict_end = b.pos.checked_add(n)?;
    while b.pos < dict_end {
        b.align(8)?;
        let key = b.string()?;
        let vsig = b.signature()?;
        if key == "ActiveState" && vsig == "s" {
            return Some((path?, b.string()?));
        }
        b.skip(vsig.as_bytes(), 1)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};

    use super::*;

    #[test]
    fn unit_paths_escape_like_systemd() {
        assert_eq!(unit_path("nsd.service"), "/org/freedesktop/systemd1/unit/nsd_2eservice");
        assert_eq!(unit_path("getty@tty1.service"), "/org/freedesktop/systemd1/unit/getty_40tty1_2eservice");
    }

    #[test]
    fn signatures() {
        assert_eq!(one_type(b"a{sv}as"), Some(5));
        assert_eq!(one_type(b"(ta{sv})s"), Some(8));
        assert_eq!(one_type(b"a(s"), None);
    }

    /// A signal message whose one header field has the signature `sig`.
    fn with_field_of_type(sig: &str) -> Vec<u8> {
        let mut w = W(vec![b'l', 4, 0, 1]);
        w.u32(0);
        w.u32(1);
        let len_at = w.0.len();
        w.u32(0);
        w.align(8);
        let start = w.0.len();
        w.0.push(9);
        w.signature(sig);
        w.0.extend_from_slice(&[0; 8]);
        let n = (w.0.len() - start) as u32;
        w.0[len_at..len_at + 4].copy_from_slice(&n.to_le_bytes());
        w.align(8);
        w.0
    }

    #[test]
    fn a_lone_open_paren_or_brace_is_no_type_and_no_panic() {
        for sig in ["(", "{", "(y", "{sv", "(y}", "a("] {
            assert_eq!(active_state(&with_field_of_type(sig)), None, "{sig}");
        }
        let mut r = R { b: &[0; 16], pos: 0, little: true };
        assert_eq!(r.skip(b"(", 0), None);
        assert_eq!(r.skip(b"(yy)", 0), Some(()));
    }

    /// The daemon, and the directory of its socket (removed after it).
    struct Daemon(Child, #[allow(dead_code)] tempfile::TempDir);

    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A private bus (dbus-daemon), as the system bus would be.
    fn daemon() -> Option<(Daemon, PathBuf)> {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        let conf = dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig><type>session</type>\
                 <listen>unix:path={}</listen><auth>EXTERNAL</auth><policy context=\"default\">\
                 <allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/><allow own=\"*\"/>\
                 </policy></busconfig>",
                socket.display()
            ),
        )
        .unwrap();
        let child = match Command::new("dbus-daemon")
            .args(["--nofork", "--print-address", &format!("--config-file={}", conf.display())])
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                assert!(std::env::var("CI").as_deref() != Ok("true"), "dbus-daemon is needed in CI: {e}");
                eprintln!("skipped: no dbus-daemon ({e})");
                return None;
            }
        };
        let mut d = Daemon(child, dir);
        let mut line = String::new();
        io::BufRead::read_line(&mut io::BufReader::new(d.0.stdout.take().unwrap()), &mut line).unwrap();
        assert!(line.contains("unix:path="), "{line}");
        Some((d, socket))
    }

    #[test]
    fn a_unit_signal_from_a_real_bus_gives_its_active_state() {
        let Some((_d, socket)) = daemon() else { return };
        let mut bus = Bus::connect(&socket).unwrap();
        bus.watch_unit("nsd.service").unwrap();
        bus.watch_unit("other.service").unwrap();
        // Anyone on the bus may send this signal (gdbus here, a client
        // that does not own systemd's name): not delivered.
        let spoof = |path: &str, props: &str| {
            // --session, not --address: a bus client (with Hello), whose
            // signals the bus routes to match rules.
            let st = Command::new("gdbus")
                .env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", socket.display()))
                .args([
                    "emit",
                    "--session",
                    "--object-path",
                    path,
                    "--signal",
                    "org.freedesktop.DBus.Properties.PropertiesChanged",
                    "'org.freedesktop.systemd1.Unit'",
                    props,
                    "@as []",
                ])
                .status()
                .expect("gdbus");
            assert!(st.success());
        };
        // From the owner of org.freedesktop.systemd1 (tests/events_fake_systemd.py).
        let emit = |path: &str, props: &str| {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/events_fake_systemd.py");
            let st = Command::new("python3").args([script, socket.to_str().unwrap(), path, props]).status();
            assert!(st.expect("python3").success());
        };
        spoof(&unit_path("nsd.service"), "{'ActiveState': <'failed'>}");
        // Other properties first, of other types, that are skipped.
        emit(
            &unit_path("nsd.service"),
            r#"[["InactiveEnterTimestamp", "t", 5], ["Result", "s", "success"], ["Transient", "b", false],
                ["ActiveState", "s", "deactivating"], ["SubState", "s", "stop-sigterm"]]"#,
        );
        emit(&unit_path("nsd.service"), r#"[["SubState", "s", "dead"]]"#);
        emit(&unit_path("unwatched.service"), r#"[["ActiveState", "s", "failed"]]"#);
        let mut got = Vec::new();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while got.is_empty() && std::time::Instant::now() < until {
            let mut fds = [nix::poll::PollFd::new(bus.fd(), nix::poll::PollFlags::POLLIN)];
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap();
            got.extend(bus.read().unwrap());
        }
        assert_eq!(got, [(unit_path("nsd.service"), "deactivating".to_string())]);
    }
}
