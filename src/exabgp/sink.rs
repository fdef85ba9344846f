//! The stdout writer thread: the only code that calls `write(2)` on stdout.
//!
//! The engine hands lines over with [`Sink::try_send`], which never blocks:
//! the sink holds at most [`SINK_CAP`] lines and refuses more (the caller
//! keeps them, see [`super::writer`]). The thread writes one whole line at a
//! time and reports each line fully written, with the [`Instant`] taken just
//! before the `write(2)` that wrote its last byte: ExaBGP cannot have read
//! the line, so cannot have answered it, before that instant.
//!
//! Guarantees:
//! - **Never blocks the engine**: every method returns at once, except
//!   [`Sink::wait_idle`], which returns by its deadline.
//! - **Whole lines only**: a line is never followed by another unless it was
//!   written completely. After a failed write (EPIPE: ExaBGP is gone) or
//!   [`Sink::stop`], the thread writes nothing more.
//! - **Shutdown wins**: [`Sink::preempt`] puts a final batch ahead of the
//!   lines waiting here (which are dropped); a thread stuck in `write(2)`
//!   because ExaBGP stopped reading keeps nothing else waiting: the engine
//!   gives up at its deadline and the process exits, which ends the thread.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

/// Most lines waiting in the sink. Small: lines that wait here can no longer
/// be superseded by a route's newer line; the writer's own queue can.
pub const SINK_CAP: usize = 64;

/// A line fully written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// The sequence number the line was handed over with.
    pub seq: u64,
    /// Taken just before the `write(2)` that wrote the line's newline.
    pub written_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<(u64, String)>,
    reports: Vec<Report>,
    /// Lines written in all, counting the one being written.
    written: u64,
    /// The line being written, if any.
    busy: Option<u64>,
    /// Write no more lines (stopped, or a write failed).
    stopped: bool,
    error: Option<(io::ErrorKind, String)>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when there is work (or a stop) for the thread.
    work: Condvar,
    /// Signalled when the thread wrote a line or gave up.
    progress: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The engine's handle on the writer thread.
#[derive(Debug)]
pub struct Sink {
    shared: Arc<Shared>,
}

impl Sink {
    /// Starts the thread that owns `out`. `out` must be unbuffered (a pipe or
    /// a file), so that a line "written" is in the pipe; stdout's own handle
    /// is line-buffered, so use [`stdout`] for it.
    pub fn spawn(mut out: impl Write + Send + 'static) -> io::Result<Sink> {
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        thread::Builder::new().name("stdout".into()).stack_size(128 * 1024).spawn(move || {
            loop {
                let (seq, line) = {
                    let mut st = theirs.lock();
                    loop {
                        if st.stopped {
                            return;
                        }
                        if let Some(next) = st.queue.pop_front() {
                            st.busy = Some(next.0);
                            // Counted before the write: a reader that got
                            // the line must find it counted.
                            st.written += 1;
                            break next;
                        }
                        st = theirs.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                    }
                };
                let result = write_line(&mut out, &line);
                let mut st = theirs.lock();
                st.busy = None;
                match result {
                    Ok(written_at) => st.reports.push(Report { seq, written_at }),
                    Err(e) => {
                        st.written -= 1;
                        st.error = Some((e.kind(), e.to_string()));
                        st.stopped = true;
                    }
                }
                theirs.progress.notify_all();
            }
        })?;
        Ok(Sink { shared })
    }

    /// Hands `line` to the thread, or gives it back when [`SINK_CAP`] lines
    /// wait already (or the sink stopped).
    pub fn try_send(&self, seq: u64, line: String) -> Result<(), String> {
        let mut st = self.shared.lock();
        if st.stopped || st.queue.len() >= SINK_CAP {
            return Err(line);
        }
        st.queue.push_back((seq, line));
        self.shared.work.notify_one();
        Ok(())
    }

    /// Drops the lines waiting here and queues `batch` instead, ahead of
    /// anything sent later. Returns the sequence numbers dropped. A line
    /// being written is finished first.
    pub fn preempt(&self, batch: Vec<(u64, String)>) -> Vec<u64> {
        let mut st = self.shared.lock();
        let dropped = st.queue.drain(..).map(|(seq, _)| seq).collect();
        if !st.stopped {
            st.queue.extend(batch);
            self.shared.work.notify_one();
        }
        dropped
    }

    /// The lines fully written since the last call, in order.
    pub fn take_reports(&self) -> Vec<Report> {
        std::mem::take(&mut self.shared.lock().reports)
    }

    /// True once the sink writes nothing more ([`Sink::stop`], or a write
    /// failed).
    pub fn is_stopped(&self) -> bool {
        self.shared.lock().stopped
    }

    /// Lines written so far (reports taken or not), counting the one being
    /// written: a line someone read is always counted.
    pub fn written(&self) -> u64 {
        self.shared.lock().written
    }

    /// Why writing stopped, if a write failed.
    pub fn error(&self) -> Option<io::Error> {
        self.shared.lock().error.as_ref().map(|(kind, msg)| io::Error::new(*kind, msg.clone()))
    }

    /// Lines handed over and not yet written (nor dropped).
    pub fn pending(&self) -> usize {
        let st = self.shared.lock();
        if st.stopped { 0 } else { st.queue.len() + usize::from(st.busy.is_some()) }
    }

    /// Waits until every line handed over is written, writing failed, or
    /// `deadline` passes; true in the first case.
    pub fn wait_idle(&self, deadline: Instant) -> bool {
        let mut st = self.shared.lock();
        loop {
            if st.stopped {
                return st.queue.is_empty() && st.busy.is_none() && st.error.is_none();
            }
            if st.queue.is_empty() && st.busy.is_none() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self.shared.progress.wait_timeout(st, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Writes nothing more: the line being written (if any) is finished, the
    /// lines waiting are dropped.
    pub fn stop(&self) {
        let mut st = self.shared.lock();
        st.stopped = true;
        st.queue.clear();
        self.shared.work.notify_all();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // The thread exits once it is not inside write(2).
        self.stop();
    }
}

/// Writes `line` and a newline completely; returns the instant taken before
/// the `write(2)` that wrote the newline.
fn write_line(out: &mut impl Write, line: &str) -> io::Result<Instant> {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let mut done = 0;
    loop {
        let before = Instant::now();
        match out.write(&buf[done..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "stdout accepted no bytes")),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if done == buf.len() {
            out.flush()?;
            return Ok(before);
        }
    }
}

/// An unbuffered handle on stdout (a duplicate of file descriptor 1), for
/// [`Sink::spawn`]. Nothing else in exaprobe writes to stdout.
pub fn stdout() -> io::Result<std::fs::File> {
    use std::os::fd::AsFd;
    Ok(std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    #[test]
    fn writes_lines_in_order_and_reports_each() {
        let (mut r, w) = io::pipe().unwrap();
        let sink = Sink::spawn(w).unwrap();
        let before = Instant::now();
        for (i, l) in ["a", "bb", "ccc"].into_iter().enumerate() {
            sink.try_send(i as u64, l.into()).unwrap();
        }
        assert!(sink.wait_idle(Instant::now() + Duration::from_secs(10)));
        let reports = sink.take_reports();
        assert_eq!(reports.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(reports.iter().all(|r| r.written_at >= before));
        drop(sink);
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "a\nbb\nccc\n");
    }

    #[test]
    fn a_closed_reader_is_an_error_and_nothing_more_is_written() {
        let (r, w) = io::pipe().unwrap();
        drop(r);
        let sink = Sink::spawn(w).unwrap();
        sink.try_send(0, "a".into()).unwrap();
        assert!(!sink.wait_idle(Instant::now() + Duration::from_secs(10)));
        assert_eq!(sink.error().map(|e| e.kind()), Some(io::ErrorKind::BrokenPipe));
        assert_eq!(sink.try_send(1, "b".into()), Err("b".into()));
    }

    #[test]
    fn the_sink_holds_at_most_its_cap() {
        let (_r, w) = io::pipe().unwrap();
        let sink = Sink::spawn(w).unwrap();
        sink.stop(); // nothing gets written: the queue only fills
        assert!(sink.try_send(0, "a".into()).is_err());
        let (_r, w) = io::pipe().unwrap();
        let sink = Sink::spawn(w).unwrap();
        let big = "x".repeat(70 * 1024); // one line fills the pipe
        let mut accepted = 0;
        for i in 0..(SINK_CAP as u64 + 10) {
            if sink.try_send(i, big.clone()).is_ok() {
                accepted += 1;
            }
        }
        // The thread took one (blocked writing it), the queue holds the cap.
        assert!(accepted <= SINK_CAP + 1, "{accepted}");
        assert!(accepted >= SINK_CAP);
    }
}
