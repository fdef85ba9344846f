//! The logger: the backend of the `log` facade, writing to stderr (the
//! default), to syslog or to the systemd journal. stdout belongs to ExaBGP;
//! no log line ever goes there.
//!
//! - **stderr**: `2026-11-27T03:39:30.123Z exaprobe[pid] LEVEL message`.
//!   ExaBGP passes it on to its own output, and systemd to the journal.
//! - **syslog**: a datagram to `/dev/log`, facility daemon, tag
//!   `exaprobe[pid]`, no timestamp (the local daemon stamps the time it
//!   received the line, as it does for Python's `SysLogHandler`; a timestamp
//!   of ours would have to be local time, which std cannot compute).
//! - **journald**: the journal's native protocol, a datagram of `KEY=value`
//!   fields (`MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER=exaprobe`, …) to
//!   `/run/systemd/journal/socket`.
//!
//! When the socket of the chosen target is absent (in a container, say), one
//! warning goes to stderr and stderr is used. A send that fails later is
//! retried once on a fresh connection (the daemon may have restarted); if
//! that fails too the line goes to stderr, with one warning the first time,
//! and so do the lines of the next few seconds before the socket is tried
//! again. Sends time out after 100 ms: a wedged log daemon must not stall the
//! engine.
//!
//! Messages about a service start with its name.

use std::fmt;
use std::io::{self, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The socket of the local syslog daemon.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// The native socket of systemd-journald.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The identifier lines are logged under.
const IDENT: &str = "exaprobe";

/// Syslog facility `daemon`.
const FACILITY_DAEMON: u8 = 3;

/// How long one send to a log socket may block.
const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// After a send failed (twice: as is, then on a fresh connection), lines go
/// straight to stderr for this long before the socket is tried again, so a
/// wedged daemon costs two send timeouts per period, not per line.
const BACKOFF: Duration = Duration::from_secs(5);

/// Longest message sent to a socket (bytes); longer ones are cut. Unix
/// datagrams larger than the socket buffer (about 200 KiB by default) fail,
/// and no log daemon keeps lines this long anyway.
const MAX_MESSAGE: usize = 48 * 1024;

/// Where log lines go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Standard error (the default).
    #[default]
    Stderr,
    /// The local syslog daemon, through `/dev/log`.
    Syslog,
    /// systemd-journald, through its native protocol.
    Journald,
}

impl Target {
    /// The lowercase name, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Stderr => "stderr",
            Target::Syslog => "syslog",
            Target::Journald => "journald",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stderr" => Ok(Target::Stderr),
            "syslog" => Ok(Target::Syslog),
            "journald" => Ok(Target::Journald),
            _ => Err(format!("unknown log target {s:?} (expected stderr, syslog or journald)")),
        }
    }
}

/// Installs the logger writing to stderr, or, if it is installed already,
/// only changes the level (the target stays).
pub fn init(level: LevelFilter) {
    install();
    log::set_max_level(level);
}

/// Installs the logger if needed, sets the level and switches to `target`.
/// Returns the target in use: [`Target::Stderr`] when the socket of `target`
/// could not be reached (one warning says so).
pub fn init_with(level: LevelFilter, target: Target) -> Target {
    let logger = install();
    log::set_max_level(level);
    let (used, warning) = logger.switch(target, Path::new(SYSLOG_SOCKET), Path::new(JOURNAL_SOCKET));
    if let Some(warning) = warning {
        log::warn!("{warning}");
    }
    used
}

/// Whether stderr is connected to the journal (systemd sets `JOURNAL_STREAM`
/// to the device and inode of the stream it gave us; a variable inherited
/// from a parent whose stderr was the journal does not match ours). A unit
/// can then prefer [`Target::Journald`], which keeps the priority of each
/// line.
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(var) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = var.split_once(':') else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    let Ok(fd) = io::stderr().as_fd().try_clone_to_owned() else { return false };
    std::fs::File::from(fd).metadata().is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

fn install() -> &'static Logger {
    let logger = LOGGER.get_or_init(|| {
        Logger::new(Box::new(|bytes| {
            // One write per line, so lines from threads do not interleave.
            let _ = io::stderr().lock().write_all(bytes);
        }))
    });
    let _ = log::set_logger(logger);
    logger
}

/// Writes bytes to stderr (a parameter so tests can capture it).
type StderrSink = Box<dyn Fn(&[u8]) + Send + Sync>;

struct Logger {
    pid: u32,
    state: Mutex<State>,
    stderr: StderrSink,
    /// [`BACKOFF`], shorter in tests.
    backoff: Duration,
}

struct State {
    sink: Sink,
    /// Whether the warning about failed sends was given.
    warned: bool,
    /// Until when lines skip the socket, after a failed send.
    skip_until: Option<Instant>,
}

impl State {
    fn new(sink: Sink) -> State {
        State { sink, warned: false, skip_until: None }
    }
}

/// Where lines go now.
enum Sink {
    Stderr,
    Syslog { path: PathBuf, conn: Conn },
    Journald { path: PathBuf, sock: UnixDatagram },
}

/// A connection to the syslog daemon: `/dev/log` is a datagram socket almost
/// everywhere, a stream socket under some old syslog-ng setups.
enum Conn {
    Dgram(UnixDatagram),
    Stream(UnixStream),
}

impl Conn {
    fn open(path: &Path) -> io::Result<Conn> {
        let sock = UnixDatagram::unbound()?;
        match sock.connect(path) {
            Ok(()) => {
                sock.set_write_timeout(Some(SEND_TIMEOUT))?;
                Ok(Conn::Dgram(sock))
            }
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EPROTOTYPE as i32) => {
                let stream = UnixStream::connect(path)?;
                stream.set_write_timeout(Some(SEND_TIMEOUT))?;
                Ok(Conn::Stream(stream))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends one message; on a stream, NUL-terminated (as glibc does).
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        match self {
            Conn::Dgram(s) => s.send(msg).map(drop),
            Conn::Stream(s) => {
                let mut framed = Vec::with_capacity(msg.len() + 1);
                framed.extend_from_slice(msg);
                framed.push(0);
                s.write_all(&framed)
            }
        }
    }
}

fn open_journal(path: &Path) -> io::Result<UnixDatagram> {
    let sock = UnixDatagram::unbound()?;
    sock.connect(path)?;
    sock.set_write_timeout(Some(SEND_TIMEOUT))?;
    Ok(sock)
}

impl Logger {
    fn new(stderr: StderrSink) -> Logger {
        Logger { pid: std::process::id(), state: Mutex::new(State::new(Sink::Stderr)), stderr, backoff: BACKOFF }
    }

    /// Switches to `target`, with its socket at `syslog` or `journal`.
    /// Returns the target in use and, when that is a fallback to stderr, the
    /// warning to give.
    fn switch(&self, target: Target, syslog: &Path, journal: &Path) -> (Target, Option<String>) {
        let opened = match target {
            Target::Stderr => Ok(Sink::Stderr),
            Target::Syslog => Conn::open(syslog).map(|conn| Sink::Syslog { path: syslog.into(), conn }),
            Target::Journald => open_journal(journal).map(|sock| Sink::Journald { path: journal.into(), sock }),
        };
        let (sink, used, warning) = match opened {
            Ok(sink) => (sink, target, None),
            Err(e) => {
                let path = if target == Target::Syslog { syslog } else { journal };
                let warning = format!("cannot log to {target} through {}: {e}; logging to stderr", path.display());
                (Sink::Stderr, Target::Stderr, Some(warning))
            }
        };
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = State::new(sink);
        (used, warning)
    }

    fn stderr_line(&self, level: Level, args: &fmt::Arguments<'_>) {
        let now = humantime::format_rfc3339_millis(SystemTime::now());
        let line = format!("{now} {IDENT}[{}] {} {args}\n", self.pid, level_name(level));
        (self.stderr)(line.as_bytes());
    }

    /// Writes one record, whatever the level.
    fn write(&self, record: &Record<'_>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.skip_until.is_some_and(|t| Instant::now() < t) {
            self.stderr_line(record.level(), record.args());
            return;
        }
        let sent = match &mut state.sink {
            Sink::Stderr => {
                self.stderr_line(record.level(), record.args());
                return;
            }
            Sink::Syslog { path, conn } => {
                let msg = syslog_message(self.pid, record);
                conn.send(&msg).or_else(|_| {
                    // The daemon may have restarted: reconnect once.
                    *conn = Conn::open(path)?;
                    conn.send(&msg)
                })
            }
            Sink::Journald { path, sock } => {
                let msg = journal_message(self.pid, record);
                sock.send(&msg).map(drop).or_else(|_| {
                    *sock = open_journal(path)?;
                    sock.send(&msg).map(drop)
                })
            }
        };
        state.skip_until = sent.is_err().then(|| Instant::now() + self.backoff);
        if let Err(e) = sent {
            if !state.warned {
                state.warned = true;
                let (target, path) = match &state.sink {
                    Sink::Syslog { path, .. } => (Target::Syslog, path.display().to_string()),
                    Sink::Journald { path, .. } => (Target::Journald, path.display().to_string()),
                    Sink::Stderr => (Target::Stderr, String::new()),
                };
                let warning = format!("cannot log to {target} through {path}: {e}; lines go to stderr while it fails");
                self.stderr_line(Level::Warn, &format_args!("{warning}"));
            }
            self.stderr_line(record.level(), record.args());
        }
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.write(record);
        }
    }

    fn flush(&self) {}
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

/// The syslog severity of a level.
fn severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character
/// boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `<PRI>exaprobe[pid]: message`, the local syslog format (RFC 3164 without
/// the timestamp).
fn syslog_message(pid: u32, record: &Record<'_>) -> Vec<u8> {
    let pri = FACILITY_DAEMON * 8 + severity(record.level());
    let text = record.args().to_string();
    format!("<{pri}>{IDENT}[{pid}]: {}", truncate(&text, MAX_MESSAGE)).into_bytes()
}

/// The fields of one journal entry in the native protocol: `KEY=value\n`, or
/// for a value with a newline, `KEY\n`, its length as 64-bit little endian,
/// the value and `\n`.
fn journal_message(pid: u32, record: &Record<'_>) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, key: &str, value: &str) {
        out.extend_from_slice(key.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    let text = record.args().to_string();
    let mut out = Vec::with_capacity(text.len() + 160);
    field(&mut out, "PRIORITY", &severity(record.level()).to_string());
    field(&mut out, "SYSLOG_FACILITY", &FACILITY_DAEMON.to_string());
    field(&mut out, "SYSLOG_IDENTIFIER", IDENT);
    field(&mut out, "SYSLOG_PID", &pid.to_string());
    if let Some(file) = record.file() {
        field(&mut out, "CODE_FILE", file);
    }
    if let Some(line) = record.line() {
        field(&mut out, "CODE_LINE", &line.to_string());
    }
    field(&mut out, "MESSAGE", truncate(&text, MAX_MESSAGE));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::Arc;
    use std::thread;

    /// A logger whose stderr is captured.
    fn captured() -> (Logger, Arc<Mutex<Vec<u8>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        (Logger::new(Box::new(move |b| sink.lock().unwrap().extend_from_slice(b))), buf)
    }

    fn text(buf: &Mutex<Vec<u8>>) -> String {
        String::from_utf8(buf.lock().unwrap().clone()).unwrap()
    }

    fn log_at(logger: &Logger, level: Level, msg: &str) {
        logger.write(
            &Record::builder().level(level).file(Some("src/x.rs")).line(Some(7)).args(format_args!("{msg}")).build(),
        );
    }

    fn recv(sock: &UnixDatagram) -> Vec<u8> {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 65536];
        let n = sock.recv(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    const NOWHERE: &str = "/nonexistent/exaprobe-test.sock";

    #[test]
    fn stderr_format() {
        let (logger, out) = captured();
        log_at(&logger, Level::Info, "web: UP");
        let line = text(&out);
        let rest = line.split_once(' ').unwrap().1;
        assert_eq!(rest, format!("exaprobe[{}] INFO web: UP\n", std::process::id()));
        assert!(humantime::parse_rfc3339(line.split_once(' ').unwrap().0).is_ok(), "{line}");
    }

    #[test]
    fn syslog_datagrams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let (logger, out) = captured();
        assert_eq!(logger.switch(Target::Syslog, &path, Path::new(NOWHERE)), (Target::Syslog, None));
        let pid = std::process::id();
        for (level, pri) in [(Level::Error, 27), (Level::Warn, 28), (Level::Info, 30), (Level::Debug, 31)] {
            log_at(&logger, level, "web: DOWN");
            assert_eq!(String::from_utf8(recv(&server)).unwrap(), format!("<{pri}>exaprobe[{pid}]: web: DOWN"));
        }
        assert_eq!(text(&out), "", "nothing on stderr");
    }

    #[test]
    fn syslog_stream_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let listener = UnixListener::bind(&path).unwrap();
        let (logger, _out) = captured();
        assert_eq!(logger.switch(Target::Syslog, &path, Path::new(NOWHERE)).0, Target::Syslog);
        log_at(&logger, Level::Info, "one");
        log_at(&logger, Level::Info, "two");
        drop(logger);
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        io::Read::read_to_end(&mut conn, &mut got).unwrap();
        let pid = std::process::id();
        assert_eq!(got, format!("<30>exaprobe[{pid}]: one\0<30>exaprobe[{pid}]: two\0").into_bytes());
    }

    #[test]
    fn missing_socket_falls_back_to_stderr_with_one_warning() {
        for target in [Target::Syslog, Target::Journald] {
            let (logger, out) = captured();
            let (used, warning) = logger.switch(target, Path::new(NOWHERE), Path::new(NOWHERE));
            assert_eq!(used, Target::Stderr);
            let warning = warning.unwrap();
            assert!(warning.contains(NOWHERE) && warning.contains("logging to stderr"), "{warning}");
            log_at(&logger, Level::Info, "first");
            log_at(&logger, Level::Error, "second");
            let lines = text(&out);
            assert_eq!(lines.lines().count(), 2, "no per-line noise: {lines}");
            assert!(lines.lines().next().unwrap().ends_with(" INFO first"));
            assert!(lines.lines().nth(1).unwrap().ends_with(" ERROR second"));
        }
    }

    /// A daemon that stops reading: its queue fills up, sends time out, lines
    /// go to stderr with one warning, without a timeout per line; once the
    /// daemon reads again and the backoff is over, lines go to it again.
    #[test]
    fn a_wedged_daemon_sends_lines_to_stderr_with_one_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let (mut logger, out) = captured();
        logger.backoff = Duration::from_secs(1);
        logger.switch(Target::Syslog, &path, Path::new(NOWHERE));
        // Linux queues at most net.unix.max_dgram_qlen (10) datagrams per
        // socket; well past that, sends fail.
        let started = Instant::now();
        let n = 40;
        for i in 0..n {
            log_at(&logger, Level::Info, &format!("line {i}"));
        }
        let elapsed = started.elapsed();
        let lines = text(&out);
        let lines: Vec<&str> = lines.lines().collect();
        let warnings = lines.iter().filter(|l| l.contains(" WARN cannot log to syslog through ")).count();
        assert_eq!(warnings, 1, "{lines:?}");
        assert!(lines[0].contains(" WARN "), "the warning comes first: {lines:?}");
        let on_stderr = lines.len() - 1;
        assert!(on_stderr >= 1);
        assert!(lines.last().unwrap().ends_with(&format!(" INFO line {}", n - 1)));
        // One failed send (and its retry: 200 ms) per backoff period, not per
        // line (which would take seconds).
        assert!(elapsed < Duration::from_millis(900), "{elapsed:?} for {on_stderr} lines on stderr");
        let mut received = 0;
        server.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1024];
        while server.recv(&mut buf).is_ok() {
            received += 1;
        }
        assert_eq!(received + on_stderr, n, "every line went somewhere, once");
        // The daemon reads again; after the backoff, lines reach it.
        server.set_nonblocking(false).unwrap();
        thread::sleep(Duration::from_millis(1100));
        log_at(&logger, Level::Info, "back");
        assert!(String::from_utf8(recv(&server)).unwrap().ends_with("]: back"));
        assert_eq!(text(&out).lines().count(), lines.len(), "nothing more on stderr");
    }

    /// Decodes the native journal protocol, strictly.
    fn journal_fields(mut msg: &[u8]) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        while !msg.is_empty() {
            let end = msg.iter().position(|&b| b == b'\n' || b == b'=').unwrap();
            let key = String::from_utf8(msg[..end].to_vec()).unwrap();
            assert!(key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'), "{key}");
            let value;
            if msg[end] == b'=' {
                let nl = msg[end..].iter().position(|&b| b == b'\n').unwrap() + end;
                value = msg[end + 1..nl].to_vec();
                msg = &msg[nl + 1..];
            } else {
                let len = u64::from_le_bytes(msg[end + 1..end + 9].try_into().unwrap()) as usize;
                value = msg[end + 9..end + 9 + len].to_vec();
                assert_eq!(msg[end + 9 + len], b'\n');
                msg = &msg[end + 10 + len..];
            }
            fields.push((key, String::from_utf8(value).unwrap()));
        }
        fields
    }

    #[test]
    fn journald_native_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let (logger, out) = captured();
        assert_eq!(logger.switch(Target::Journald, Path::new(NOWHERE), &path), (Target::Journald, None));
        log_at(&logger, Level::Warn, "web: DOWN");
        let fields = journal_fields(&recv(&server));
        let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MESSAGE"), Some("web: DOWN"));
        assert_eq!(get("PRIORITY"), Some("4"));
        assert_eq!(get("SYSLOG_IDENTIFIER"), Some("exaprobe"));
        assert_eq!(get("SYSLOG_FACILITY"), Some("3"));
        assert_eq!(get("SYSLOG_PID"), Some(std::process::id().to_string().as_str()));
        assert_eq!(get("CODE_FILE"), Some("src/x.rs"));
        assert_eq!(get("CODE_LINE"), Some("7"));
        // A value with a newline takes the binary form.
        log_at(&logger, Level::Error, "line one\nline two=x");
        let fields = journal_fields(&recv(&server));
        assert!(fields.contains(&("MESSAGE".into(), "line one\nline two=x".into())), "{fields:?}");
        assert!(fields.contains(&("PRIORITY".into(), "3".into())));
        assert_eq!(text(&out), "");
    }

    #[test]
    fn long_messages_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let (logger, _out) = captured();
        logger.switch(Target::Syslog, &path, Path::new(NOWHERE));
        log_at(&logger, Level::Info, &"é".repeat(100_000));
        let got = String::from_utf8(recv(&server)).unwrap();
        let body = got.split_once("]: ").unwrap().1;
        assert_eq!(body.len(), MAX_MESSAGE);
    }

    /// Set in the environment of the children of `journal_stream_detection`:
    /// what `stderr_is_journal` must answer there.
    const CHILD: &str = "EXAPROBE_LOGGER_TEST_EXPECT";

    /// Runs [`child_checks_journal_stream`] in children whose stderr is a
    /// file, with `JOURNAL_STREAM` naming that file or another one.
    #[test]
    fn journal_stream_detection() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let other = std::fs::File::create(dir.path().join("other")).unwrap();
        let id = |f: &std::fs::File| {
            let m = f.metadata().unwrap();
            format!("{}:{}", m.dev(), m.ino())
        };
        for (stream, expect) in [(id(&stderr), "yes"), (id(&other), "no"), ("garbage".into(), "no")] {
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "ops::logger::tests::child_checks_journal_stream", "--test-threads=1"])
                .env(CHILD, expect)
                .env("JOURNAL_STREAM", &stream)
                .stdout(std::process::Stdio::null())
                .stderr(stderr.try_clone().unwrap())
                .status()
                .unwrap();
            assert!(status.success(), "JOURNAL_STREAM={stream} should give {expect}");
        }
    }

    /// The child half of [`journal_stream_detection`]; does nothing on its own.
    #[test]
    fn child_checks_journal_stream() {
        if let Some(expect) = std::env::var_os(CHILD) {
            assert_eq!(stderr_is_journal(), expect == "yes");
        }
    }

    #[test]
    fn target_names() {
        for t in [Target::Stderr, Target::Syslog, Target::Journald] {
            assert_eq!(t.to_string().parse::<Target>(), Ok(t));
        }
        assert!("console".parse::<Target>().is_err());
        assert_eq!(serde_json::from_str::<Target>("\"journald\"").unwrap(), Target::Journald);
    }
}
