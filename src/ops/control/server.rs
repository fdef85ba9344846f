//! The server side of the control socket: taking the socket path safely,
//! binding it so that nobody else can ever connect, and serving requests
//! within bounds an outsider cannot grow.
//!
//! Bounds (`LIMITS`): at most 16 connections at once (one more gets an
//! error reply and is closed at once); a connection that sends nothing for
//! 60 s is closed; a request line longer than 64 KiB gets an error reply and
//! the connection is closed; the engine has 5 s to answer. When `accept`
//! fails (out of file descriptors, say) the loop backs off, from 10 ms up to
//! 1 s, instead of spinning.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::stat::Mode;

use super::ControlSettings;
use super::proto::{Reply, Request};

/// A request for the engine, with where to send the reply.
#[derive(Debug)]
pub struct Call {
    /// The request.
    pub request: Request,
    /// The reply channel.
    pub reply: Sender<Reply>,
}

/// Bounds of the server; see the module docs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Connections served at once.
    pub(crate) max_conns: usize,
    /// A connection idle this long is closed.
    pub(crate) idle: Duration,
    /// Longest request line, newline included.
    pub(crate) max_line: usize,
    /// How long the engine has to answer.
    pub(crate) reply_wait: Duration,
}

/// The bounds in force.
pub(crate) const LIMITS: Limits =
    Limits { max_conns: 16, idle: Duration::from_secs(60), max_line: 64 * 1024, reply_wait: Duration::from_secs(5) };

/// Shortest and longest pause after a failed `accept`.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

type Submit = Arc<dyn Fn(Call) -> bool + Send + Sync>;

/// Takes the socket path (refusing a live instance's socket and anything
/// that is not a socket, replacing a stale socket), locks the state file,
/// binds the socket with mode 0600 from the start (then 0660 and the group,
/// if configured), and serves it from a thread that hands each request to
/// `submit` (false: the engine is gone). The state file stays locked as
/// long as that thread lives: the whole process.
pub fn serve(settings: &ControlSettings, submit: impl Fn(Call) -> bool + Send + Sync + 'static) -> anyhow::Result<()> {
    serve_with(settings, Arc::new(submit), LIMITS)
}

pub(crate) fn serve_with(settings: &ControlSettings, submit: Submit, limits: Limits) -> anyhow::Result<()> {
    let path = &settings.socket;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    take_path(path)?;
    let lock = crate::ops::state::lock(&settings.state_path())?;
    let listener = bind_private(path).with_context(|| format!("binding {}", path.display()))?;
    if let Some(group) = &settings.group {
        let gid = nix::unistd::Group::from_name(group)?.with_context(|| format!("no group {group:?}"))?.gid;
        std::os::unix::fs::lchown(path, None, Some(gid.as_raw()))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    if settings.mode != 0o600 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(settings.mode))
            .with_context(|| format!("chmod {}", path.display()))?;
    }
    thread::Builder::new().name("control".into()).spawn(move || {
        let _lock = lock;
        accept_loop(&listener, &submit, limits);
    })?;
    Ok(())
}

/// Makes `path` free for our socket: nothing there, or a socket nobody
/// answers on (removed). A live socket or anything else is an error.
fn take_path(path: &Path) -> anyhow::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("control socket {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!(
            "control socket {} exists and is not a socket; refusing to replace it (remove it, or give another path)",
            path.display()
        );
    }
    match UnixStream::connect(path) {
        Ok(_) => {
            bail!("{} belongs to a running exaprobe; stop it first, or give another control socket", path.display())
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).with_context(|| format!("removing the stale socket {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("checking whether {} is in use", path.display())),
    }
}

/// Binds with umask 0o177, so that the socket is 0600 from the moment it
/// exists: no other user can connect before a chmod. The umask is
/// process-wide; this runs at startup, and another thread creating a file
/// meanwhile would only get fewer permission bits, never more.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    bound
}

/// Gives a connection's slot back when its thread ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: &UnixListener, submit: &Submit, limits: Limits) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut backoff = BACKOFF.0;
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if backoff == BACKOFF.0 {
                    log::warn!("control socket: accept failed: {e}; backing off");
                }
                thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        backoff = BACKOFF.0;
        let slot = Slot(Arc::clone(&active));
        if active.fetch_add(1, Ordering::SeqCst) >= limits.max_conns {
            refuse(&stream, limits);
            continue;
        }
        let submit = Arc::clone(submit);
        let spawned = thread::Builder::new().name("control-conn".into()).stack_size(256 * 1024).spawn(move || {
            let _slot = slot;
            if let Err(e) = connection(&stream, &submit, limits) {
                log::debug!("control connection: {e}");
            }
        });
        if let Err(e) = spawned {
            log::warn!("control socket: cannot start a connection thread: {e}");
        }
    }
}

/// Tells a client beyond the limit why, without waiting for it.
fn refuse(stream: &UnixStream, limits: Limits) {
    let _ = stream.set_nonblocking(true);
    let reply = Reply::error(format!("too many control connections (at most {} at once); try again", limits.max_conns));
    let _ = writeln!(&*stream, "{}", reply.to_line());
}

fn connection(stream: &UnixStream, submit: &Submit, limits: Limits) -> io::Result<()> {
    let by = peer_name(stream);
    stream.set_read_timeout(Some(limits.idle))?;
    stream.set_write_timeout(Some(limits.idle))?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = Vec::new();
        if reader.by_ref().take(limits.max_line as u64).read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        if line.len() >= limits.max_line && !line.ends_with(b"\n") {
            let reply = Reply::error(format!("request longer than {} bytes; closing", limits.max_line));
            writeln!(&*stream, "{}", reply.to_line())?;
            return Ok(());
        }
        let reply = match serde_json::from_slice::<Request>(&line) {
            Err(e) => Reply::error(format!("bad request: {e}")),
            Ok(mut request) => {
                if let Request::Drain { by: who, .. } = &mut request {
                    who.clone_from(&by);
                }
                let (tx, rx) = mpsc::channel();
                if submit(Call { request, reply: tx }) {
                    rx.recv_timeout(limits.reply_wait).unwrap_or_else(|_| Reply::error("exaprobe did not answer"))
                } else {
                    Reply::error("exaprobe is stopping")
                }
            }
        };
        writeln!(&*stream, "{}", reply.to_line())?;
    }
}

/// The user name (or uid) of the process at the other end.
fn peer_name(stream: &UnixStream) -> String {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    match getsockopt(stream, PeerCredentials) {
        Ok(cred) => {
            let uid = nix::unistd::Uid::from_raw(cred.uid());
            match nix::unistd::User::from_uid(uid) {
                Ok(Some(u)) => u.name,
                _ => format!("uid {uid}"),
            }
        }
        Err(_) => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::control::client::call;
    use std::time::Instant;

    /// The umask is process-wide: the tests that set it (binding does) take
    /// turns, or one could bind under another's mask.
    static UMASK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn umask_turn() -> std::sync::MutexGuard<'static, ()> {
        UMASK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn settings(dir: &Path, name: &str) -> ControlSettings {
        ControlSettings { socket: dir.join(name), mode: 0o600, group: None, state_file: None }
    }

    fn done() -> Submit {
        Arc::new(|call: Call| call.reply.send(Reply::Done).is_ok())
    }

    fn read_line(s: &UnixStream) -> String {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line
    }

    #[test]
    fn a_live_socket_is_refused_and_a_stale_one_replaced() {
        let _turn = umask_turn();
        let dir = tempfile::tempdir().unwrap();
        let live = settings(dir.path(), "c.sock");
        serve(&live, |call| call.reply.send(Reply::Done).is_ok()).unwrap();
        let err = serve(&live, |_| true).unwrap_err().to_string();
        assert!(err.contains("running exaprobe"), "{err}");
        let mode = std::fs::metadata(&live.socket).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(call(&live.socket, &Request::Status {}).unwrap(), Reply::Done);
        // A stale socket: a file nobody listens on.
        let stale = dir.path().join("stale.sock");
        drop(UnixListener::bind(&stale).unwrap());
        serve(&settings(dir.path(), "stale.sock"), |_| true).unwrap();
        assert!(UnixStream::connect(&stale).is_ok());
    }

    #[test]
    fn a_path_that_is_not_a_socket_is_left_alone() {
        let _turn = umask_turn();
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), "precious");
        std::fs::write(&s.socket, "data").unwrap();
        let err = serve(&s, |_| true).unwrap_err().to_string();
        assert!(err.contains("is not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&s.socket).unwrap(), "data");
        // Nor is a symlink followed to one.
        let link = settings(dir.path(), "link.sock");
        std::os::unix::fs::symlink(&s.socket, &link.socket).unwrap();
        assert!(serve(&link, |_| true).unwrap_err().to_string().contains("is not a socket"));
    }

    #[test]
    fn the_socket_is_private_from_the_moment_it_exists() {
        let _turn = umask_turn();
        // A permissive umask, as a careless service manager might leave it;
        // restored at once (it is process-wide).
        let old = nix::sys::stat::umask(Mode::empty());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sock");
        let bound = bind_private(&path);
        nix::sys::stat::umask(old);
        let _listener = bound.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn connections_are_bounded_idle_ones_time_out_and_long_lines_are_refused() {
        let _turn = umask_turn();
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), "b.sock");
        let limits =
            Limits { max_conns: 2, idle: Duration::from_millis(300), max_line: 1024, reply_wait: LIMITS.reply_wait };
        serve_with(&s, done(), limits).unwrap();
        let held: Vec<UnixStream> = (0..2).map(|_| UnixStream::connect(&s.socket).unwrap()).collect();
        // Give the accept thread time to count them (bounded wait: a third is refused).
        let third = {
            let until = Instant::now() + Duration::from_secs(5);
            loop {
                let c = UnixStream::connect(&s.socket).unwrap();
                let line = read_line(&c);
                if line.contains("too many control connections") {
                    break line;
                }
                assert!(Instant::now() < until, "never refused: {line}");
            }
        };
        assert!(third.contains(r#""ok":false"#), "{third}");
        // The idle ones are closed after the idle timeout: EOF.
        for c in &held {
            assert_eq!(read_line(c), "");
        }
        drop(held);
        // Then there is room again; a line over the limit is refused and closed.
        let until = Instant::now() + Duration::from_secs(5);
        let c = loop {
            let c = UnixStream::connect(&s.socket).unwrap();
            writeln!(&c, r#"{{"command":"status"}}"#).unwrap();
            if read_line(&c).contains(r#""ok":true"#) {
                break c;
            }
            assert!(Instant::now() < until, "no room after the idle ones left");
            thread::sleep(Duration::from_millis(20));
        };
        (&c).write_all(&vec![b'x'; 2000]).unwrap();
        assert!(read_line(&c).contains("request longer than 1024 bytes"));
        assert_eq!(read_line(&c), "");
    }

    #[test]
    fn bad_requests_get_errors_and_the_connection_stays() {
        let _turn = umask_turn();
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), "r.sock");
        serve_with(&s, done(), LIMITS).unwrap();
        let c = UnixStream::connect(&s.socket).unwrap();
        let mut r = BufReader::new(&c);
        for (req, want) in [
            ("nope", r#""ok":false"#),
            (r#"{"command":"explode"}"#, "unknown variant"),
            (r#"{"command":"status"}"#, r#"{"ok":true}"#),
        ] {
            writeln!(&c, "{req}").unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(line.contains(want), "{req} -> {line}");
        }
    }
}
