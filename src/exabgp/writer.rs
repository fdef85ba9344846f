//! The engine's side of stdout: [`Writer`] decides what to write when, and
//! matches ExaBGP's acks and query answers to the commands that caused them.
//! The bytes are written by the [`Sink`] thread.
//!
//! stdout is a protocol: one command per line, nothing else ever. With acks
//! on (ExaBGP's default) one command is in flight at a time and the next
//! waits for its `done`/`error`, because acks for pipelined commands can come
//! back out of order and ExaBGP 4.2 sends no ack at all for some malformed
//! commands (a missing ack times out).
//!
//! Guarantees:
//! - **Never blocks**: every method returns at once (but
//!   [`Writer::flush_final`], which returns by its deadline). When ExaBGP
//!   stops reading, lines wait: first in the sink (at most
//!   [`super::sink::SINK_CAP`]), then in this writer's queue.
//! - **Bounded**: in the queue a route's newer line supersedes its older one
//!   (same key), so keyed lines are bounded by the number of routes; lines
//!   without a key are at most [`MAX_KEYLESS`]. At that cap a new keyless
//!   line is dropped, counted ([`Counters::dropped`]) and logged: the
//!   adj-rib-out check ([`super::adj_rib`]) repairs what it misses.
//! - **Sound acks**: an ack read before the oldest command in flight was
//!   fully written cannot be its ack (ExaBGP had not seen the command); it is
//!   stray: logged, counted ([`Counters::stray`]) and ignored. The instants
//!   compared are the reader's (after the `read(2)` that returned the ack)
//!   and the sink's (before the `write(2)` that wrote the command's newline),
//!   both on the monotonic clock. An ack that arrives before the sink has
//!   reported the write waits for the report. This catches every `done`
//!   that was read too early; an ack that comes late (after its command
//!   timed out and the next one was written) is indistinguishable from the
//!   next command's ack, as ExaBGP's acks carry no identifier. With acks
//!   off (`NoWait`) acks are counted, not matched.
//! - **Queries**: a query ([`Writer::query`]) is a command whose answer lines
//!   come before its `done`. While it is the command in flight, lines that
//!   are neither acks, events nor JSON are its answer ([`Routed::Answer`]).
//!   Queries are sent only while acks are on: without a `done` the end of an
//!   answer cannot be told (ExaBGP 4.2.25 and 5.0.15 both send the answer
//!   lines but no `done` with `exabgp.api.ack=false`).
//! - **Shutdown wins**: [`Writer::flush_final`] drops what waits, writes the
//!   final lines first and returns by its deadline even if the pipe stays
//!   full.

use std::collections::VecDeque;
use std::io;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::sink::Sink;
use super::stdin::{Incoming, Stamped};

/// Whether commands wait for ExaBGP's acks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// One command in flight; give up waiting after this long.
    Wait(Duration),
    /// Write and move on (`--no-ack`, `exabgp.api.ack=false`, dry-run).
    NoWait,
}

/// Counters, for logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Lines written (counting the one being written; see
    /// [`Sink::written`]).
    pub lines: u64,
    /// `done` acks matched to a command.
    pub done: u64,
    /// `error` acks matched to a command.
    pub error: u64,
    /// Commands whose ack never came.
    pub missing: u64,
    /// Acks that matched no command: read before the command in flight was
    /// written, or with none in flight.
    pub stray: u64,
    /// Keyless lines dropped because [`MAX_KEYLESS`] waited already.
    pub dropped: u64,
}

/// After this many missed acks in a row, with none ever received, exaprobe
/// concludes that ExaBGP runs with acks off and stops waiting.
const MISSES_BEFORE_NO_ACK: u32 = 3;

/// Most lines without a key waiting in the writer's queue (withdraws of
/// services removed by a reload, queries).
pub const MAX_KEYLESS: usize = 4096;

/// Most answer lines kept for one query: a full table is not our business.
/// A longer answer is marked incomplete.
pub const MAX_ANSWER_LINES: usize = 65_536;

/// While something waits on the sink, [`Writer::deadline`] asks to be
/// called again this soon, to collect the sink's reports.
const POLL: Duration = Duration::from_millis(50);

/// How long dropping a writer waits for its last lines to be written.
pub const DROP_FLUSH: Duration = Duration::from_millis(300);

/// The answer to a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The query, as written.
    pub command: String,
    /// The lines ExaBGP wrote before its ack.
    pub lines: Vec<String>,
    /// `done` (true) or `error` (false).
    pub ok: bool,
    /// False when lines beyond [`MAX_ANSWER_LINES`] were dropped.
    pub complete: bool,
    /// Commands queued or in flight behind the query when its ack came:
    /// the answer does not reflect them. Compare an adj-rib-out answer with
    /// the intent only when this is 0 (or leave those routes out).
    pub behind: usize,
}

/// Where a line from stdin went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routed {
    /// An ack, or a line of a query's answer: the writer took it.
    Taken,
    /// The ack of a query: its answer is complete.
    Answer(Answer),
    /// Not for the writer: the engine handles it (shutdown, events, logs).
    Event(Incoming),
}

#[derive(Debug)]
struct Queued {
    key: Option<String>,
    line: String,
    query: bool,
}

#[derive(Debug)]
struct InFlight {
    seq: u64,
    /// The route key it was queued with, if any.
    key: Option<String>,
    line: String,
    /// When the sink reported it fully written.
    written_at: Option<Instant>,
    /// The answer so far, for a query.
    answer: Option<Vec<String>>,
    truncated: bool,
}

/// The single writer of stdout, on the engine's side.
///
/// `W` is the type of the output the sink thread owns; it only appears in
/// [`Writer::new`] (kept generic so the engine's `Engine<W>` compiles
/// unchanged; a later cleanup can drop it).
#[derive(Debug)]
pub struct Writer<W> {
    sink: Sink,
    mode: AckMode,
    queue: VecDeque<Queued>,
    keyless: usize,
    /// Handed to the sink, waiting for their ack (acks on) or their write
    /// report (acks off, `acked` false).
    in_flight: VecDeque<InFlight>,
    /// Acks that came before the write report of the command in flight.
    parked: VecDeque<(bool, Instant)>,
    /// Answers completed while handling parked acks.
    answers: VecDeque<Answer>,
    next_seq: u64,
    misses_in_row: u32,
    counters: Counters,
    last_call: Instant,
    /// The first sequence number of the final batch, and how many of it
    /// were written.
    final_from: Option<u64>,
    final_written: usize,
    _out: PhantomData<fn(W)>,
}

impl<W: io::Write + Send + 'static> Writer<W> {
    /// A writer whose sink thread owns `out` (unbuffered: use
    /// [`super::sink::stdout`] for stdout). Fails only if the thread cannot
    /// start.
    pub fn new(out: W, mode: AckMode) -> io::Result<Self> {
        Ok(Writer::with_sink(Sink::spawn(out)?, mode))
    }
}

impl<W> Writer<W> {
    fn with_sink(sink: Sink, mode: AckMode) -> Self {
        Writer {
            sink,
            mode,
            queue: VecDeque::new(),
            keyless: 0,
            in_flight: VecDeque::new(),
            parked: VecDeque::new(),
            answers: VecDeque::new(),
            next_seq: 0,
            misses_in_row: 0,
            counters: Counters::default(),
            last_call: Instant::now(),
            final_from: None,
            final_written: 0,
            _out: PhantomData,
        }
    }

    /// Queues a command and writes it as soon as the channel allows.
    ///
    /// A command with a `key` supersedes queued, not yet handed over,
    /// commands with the same key: when a route changes state again while
    /// ExaBGP is slow, only its newest line is sent. Commands without a key
    /// are always sent (up to [`MAX_KEYLESS`] waiting).
    pub fn send(&mut self, line: String, key: Option<String>, now: Instant) -> io::Result<()> {
        debug_assert!(!line.contains(['\n', '\r']), "a command must be one line");
        self.enqueue(Queued { key, line, query: false });
        self.pump(now)
    }

    /// Queues a query such as `show adj-rib out extensive`; its answer comes
    /// back from [`Writer::on_stdin`] as [`Routed::Answer`]. Returns false,
    /// and queues nothing, when acks are off: the answer's end could not be
    /// told. A query supersedes a queued query with the same text.
    pub fn query(&mut self, command: String, now: Instant) -> io::Result<bool> {
        if self.mode == AckMode::NoWait {
            return Ok(false);
        }
        self.enqueue(Queued { key: Some(format!("\0query {command}")), line: command, query: true });
        self.pump(now)?;
        Ok(true)
    }

    fn enqueue(&mut self, q: Queued) {
        if q.key.is_some() {
            self.queue.retain(|old| old.key != q.key);
        } else if self.keyless >= MAX_KEYLESS {
            self.counters.dropped += 1;
            log::error!(
                "{MAX_KEYLESS} lines wait for ExaBGP to read stdout; dropped: {} (the adj-rib-out check repairs it)",
                q.line
            );
            return;
        } else {
            self.keyless += 1;
        }
        self.queue.push_back(q);
    }

    /// Writes `lines` at once, ahead of anything queued, without waiting for
    /// acks between them. For shutdown, where time is short: what waits
    /// (here and in the sink) is dropped. Returns at once; see
    /// [`Writer::flush_final`] to wait for the writes.
    pub fn send_now(&mut self, lines: &[String], now: Instant) -> io::Result<()> {
        self.last_call = now;
        self.queue.clear();
        self.keyless = 0;
        let batch: Vec<(u64, String)> = lines
            .iter()
            .map(|l| {
                self.next_seq += 1;
                (self.next_seq, l.clone())
            })
            .collect();
        let dropped = self.sink.preempt(batch.clone());
        self.in_flight.retain(|f| !dropped.contains(&f.seq));
        for (seq, line) in batch {
            log::debug!("sending now: {line}");
            self.in_flight.push_back(InFlight {
                seq,
                key: None,
                line,
                written_at: None,
                answer: None,
                truncated: false,
            });
        }
        self.collect(now)
    }

    /// Shutdown: drops what waits, writes `lines` first, and waits until
    /// they are written or `deadline` passes; then writes nothing more.
    /// Returns how many of `lines` were fully written (whole lines only: a
    /// line cut by a full pipe at the deadline does not count, and nothing
    /// follows it). Acks are not awaited.
    pub fn flush_final(&mut self, lines: &[String], deadline: Instant) -> usize {
        self.final_from = Some(self.next_seq + 1);
        self.final_written = 0;
        let _ = self.send_now(lines, Instant::now());
        self.sink.wait_idle(deadline);
        self.sink.stop();
        self.apply_reports(self.sink.take_reports());
        self.final_written
    }

    /// Waits until every line that may go (all of them with acks off) is
    /// written, or `deadline`; true in the first case. For the end of a run
    /// (dry-run, `--no-ack`): the process must not exit before its last
    /// lines are out. (Dropping the writer only waits, up to
    /// [`DROP_FLUSH`], for the lines already handed to the sink.)
    pub fn flush(&mut self, deadline: Instant) -> bool {
        loop {
            let now = Instant::now();
            if self.collect(now).is_err() {
                return false;
            }
            let can_go = self.mode == AckMode::NoWait || self.in_flight.is_empty();
            if self.sink.pending() == 0 && (self.queue.is_empty() || !can_go) {
                return true;
            }
            if now >= deadline {
                return false;
            }
            self.sink.wait_idle(deadline.min(now + POLL));
        }
    }

    /// The answer of a query whose ack was matched during [`Writer::on_tick`]
    /// (when the ack came before the sink's report that the query was
    /// written, a race of microseconds). Call after `on_tick`.
    pub fn take_answer(&mut self) -> Option<Answer> {
        self.answers.pop_front()
    }

    /// Handles a line read from stdin: acks and query answers are taken,
    /// the rest is for the engine.
    pub fn on_stdin(&mut self, line: Stamped, now: Instant) -> io::Result<Routed> {
        let routed = match line.incoming {
            Incoming::Done | Incoming::Error => {
                self.ack(line.incoming == Incoming::Done, line.read_at, now)?;
                return Ok(self.answers.pop_front().map_or(Routed::Taken, Routed::Answer));
            }
            Incoming::Other(text) if !text.starts_with('{') && self.answering(line.read_at) => {
                let front = self.in_flight.front_mut().expect("answering() checked");
                let answer = front.answer.as_mut().expect("answering() checked");
                if answer.len() < MAX_ANSWER_LINES {
                    answer.push(text);
                } else {
                    front.truncated = true;
                }
                Routed::Taken
            }
            other => Routed::Event(other),
        };
        self.collect(now)?;
        Ok(routed)
    }

    /// True when the command in flight is a query whose answer `read_at` may
    /// belong to.
    fn answering(&mut self, read_at: Instant) -> bool {
        let _ = self.collect(read_at.max(self.last_call));
        self.in_flight.front().is_some_and(|f| f.answer.is_some() && f.written_at.is_none_or(|t| t <= read_at))
    }

    /// Handles a `done` (`ok`) or `error` ack read at `read_at` (the
    /// [`Stamped::read_at`] of its line). Prefer [`Writer::on_stdin`], which
    /// also returns the answers of queries (dropped here).
    pub fn on_ack(&mut self, ok: bool, read_at: Instant) -> io::Result<()> {
        self.ack(ok, read_at, read_at.max(Instant::now()))?;
        self.answers.clear();
        Ok(())
    }

    fn ack(&mut self, ok: bool, read_at: Instant, now: Instant) -> io::Result<()> {
        self.misses_in_row = 0;
        self.last_call = now;
        if self.mode == AckMode::NoWait {
            // Not waited for, so not matched: counted only.
            if ok {
                self.counters.done += 1;
            } else {
                self.counters.error += 1;
                let n = self.counters.error;
                if n <= 10 || n.is_power_of_two() {
                    log::error!(
                        "ExaBGP answered `error` to a command (see ExaBGP's log for which and why; {n} so far)"
                    );
                }
            }
            return self.collect(now);
        }
        self.apply_reports(self.sink.take_reports());
        self.parked.push_back((ok, read_at));
        self.match_parked();
        self.pump(now)
    }

    /// Matches parked acks to the commands in flight, as far as the write
    /// reports allow.
    fn match_parked(&mut self) {
        while let Some(&(ok, read_at)) = self.parked.front() {
            let verdict = match self.in_flight.front() {
                None => Some(false),
                Some(f) => match f.written_at {
                    Some(t) => Some(t <= read_at),
                    // Not reported written: decide when it is, unless it
                    // never will be.
                    None if self.sink.pending() == 0 && self.sink.is_stopped() => Some(false),
                    None => None,
                },
            };
            match verdict {
                None => return,
                Some(matched) => {
                    self.parked.pop_front();
                    if matched {
                        self.matched(ok);
                    } else {
                        self.counters.stray += 1;
                        let word = if ok { "done" } else { "error" };
                        // A flood of strays must not flood the log: the
                        // first ten, then at each power of two.
                        let n = self.counters.stray;
                        if n > 10 && !n.is_power_of_two() {
                            continue;
                        }
                        if n > 10 {
                            log::warn!("{n} stray acks from ExaBGP so far (logging only some)");
                        }
                        match self.in_flight.front() {
                            Some(f) => log::warn!(
                                "ignored a stray `{word}` from ExaBGP: it came before this command was written: {}",
                                f.line
                            ),
                            None => log::warn!("ignored a stray `{word}` from ExaBGP: no command was in flight"),
                        }
                    }
                }
            }
        }
    }

    fn matched(&mut self, ok: bool) {
        let f = self.in_flight.pop_front().expect("matched() needs a command in flight");
        if ok {
            self.counters.done += 1;
            log::debug!("ExaBGP accepted: {}", f.line);
        } else {
            self.counters.error += 1;
            log::error!("ExaBGP answered `error` to: {} (see ExaBGP's log for why)", f.line);
        }
        if let Some(lines) = f.answer {
            let behind = self.queue.len() + self.in_flight.len();
            self.answers.push_back(Answer { command: f.line, lines, ok, complete: !f.truncated, behind });
        }
    }

    /// When to call [`Writer::on_tick`] next: the deadline of the oldest
    /// command's ack, or soon when lines or acks wait on the sink.
    pub fn deadline(&self) -> Option<Instant> {
        // Lines that may go but found the sink full, acks waiting for a
        // write report, lines handed over and not reported written.
        let can_go = self.mode == AckMode::NoWait || self.in_flight.is_empty();
        let waiting_on_sink = !self.parked.is_empty()
            || (can_go && !self.queue.is_empty() && self.sink.error().is_none())
            || self.in_flight.iter().any(|f| f.written_at.is_none());
        let poll = waiting_on_sink.then_some(self.last_call + POLL);
        let ack = match self.mode {
            AckMode::Wait(t) => self.in_flight.front().and_then(|f| f.written_at).map(|w| w + t),
            AckMode::NoWait => None,
        };
        match (poll, ack) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Collects the sink's reports, gives up on acks whose deadline has
    /// passed, then hands over what waits.
    pub fn on_tick(&mut self, now: Instant) -> io::Result<()> {
        self.collect(now)?;
        let AckMode::Wait(timeout) = self.mode else { return Ok(()) };
        while let Some(f) = self.in_flight.front() {
            let Some(written) = f.written_at else { break };
            if now < written + timeout {
                break;
            }
            if f.answer.is_some() {
                log::warn!("no `done` from ExaBGP within {} for: {}", crate::model::duration::show(timeout), f.line);
            } else {
                log::warn!(
                    "no ack from ExaBGP within {} for: {} (ExaBGP 4.2 does not answer some malformed commands; \
                     see its log)",
                    crate::model::duration::show(timeout),
                    f.line
                );
            }
            self.in_flight.pop_front();
            self.counters.missing += 1;
            self.misses_in_row += 1;
        }
        let acked = self.counters.done + self.counters.error + self.counters.stray;
        if self.misses_in_row >= MISSES_BEFORE_NO_ACK && acked == 0 {
            log::warn!(
                "no ack ever came from ExaBGP: assuming exabgp.api.ack=false and no longer waiting for acks \
                 (pass --no-ack to say so)"
            );
            self.mode = AckMode::NoWait;
            self.in_flight.retain(|f| f.written_at.is_none());
            self.queue.retain(|q| !q.query);
            self.keyless = self.queue.iter().filter(|q| q.key.is_none()).count();
        }
        self.pump(now)
    }

    /// True when nothing is queued, waiting for an ack, or being written.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty() && self.sink.pending() == 0
    }

    /// The route keys of the commands not known to be written yet: queued,
    /// or handed to the sink without its report. A final flush must cover
    /// them, since it drops them.
    pub fn pending_keys(&self) -> impl Iterator<Item = &str> {
        let queued = self.queue.iter().filter(|q| !q.query).filter_map(|q| q.key.as_deref());
        let unwritten = self.in_flight.iter().filter(|f| f.written_at.is_none()).filter_map(|f| f.key.as_deref());
        queued.chain(unwritten)
    }

    /// Commands handed over whose ack has not come (acks on), or that are
    /// not written yet (acks off).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The counters so far (`lines` straight from the sink: a line is
    /// counted once written, whether or not its report was collected).
    pub fn counters(&self) -> Counters {
        Counters { lines: self.sink.written(), ..self.counters }
    }

    /// Takes the reports and the sink's error, then hands over what waits.
    fn collect(&mut self, now: Instant) -> io::Result<()> {
        self.last_call = self.last_call.max(now);
        self.apply_reports(self.sink.take_reports());
        self.match_parked();
        self.pump(now)
    }

    fn apply_reports(&mut self, reports: Vec<super::sink::Report>) {
        for r in reports {
            if self.final_from.is_some_and(|first| r.seq >= first) {
                self.final_written += 1;
            }
            if let Some(f) = self.in_flight.iter_mut().find(|f| f.seq == r.seq) {
                f.written_at = Some(r.written_at);
                log::debug!("sent: {}", f.line);
            }
        }
        if self.mode == AckMode::NoWait {
            // Nothing to wait for once written.
            self.in_flight.retain(|f| f.written_at.is_none());
        }
    }

    fn pump(&mut self, now: Instant) -> io::Result<()> {
        self.last_call = self.last_call.max(now);
        if let Some(e) = self.sink.error() {
            return Err(e);
        }
        while self.in_flight.is_empty() || self.mode == AckMode::NoWait {
            let Some(q) = self.queue.pop_front() else { break };
            let seq = self.next_seq + 1;
            if let Err(line) = self.sink.try_send(seq, q.line.clone()) {
                // The sink is full: keep it here, first in line.
                self.queue.push_front(Queued { line, ..q });
                break;
            }
            self.next_seq = seq;
            if q.key.is_none() {
                self.keyless -= 1;
            }
            let answer = q.query.then(Vec::new);
            let key = if q.query { None } else { q.key };
            self.in_flight.push_back(InFlight { seq, key, line: q.line, written_at: None, answer, truncated: false });
        }
        Ok(())
    }
}

impl<W> Drop for Writer<W> {
    /// Gives the lines already handed to the sink up to [`DROP_FLUSH`] to be
    /// written (the process exits right after the engine stops); starts no
    /// new line, as ExaBGP may have said `shutdown`.
    fn drop(&mut self) {
        self.sink.wait_idle(Instant::now() + DROP_FLUSH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, PipeReader};
    use std::sync::mpsc;

    const LONG: Duration = Duration::from_secs(10);

    /// A writer over a real pipe, and the lines its reader thread sees.
    fn writer(mode: AckMode) -> (Writer<io::PipeWriter>, mpsc::Receiver<String>) {
        let (r, w) = io::pipe().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        (Writer::new(w, mode).unwrap(), rx)
    }

    /// Waits (bounded) until the sink wrote what it holds, then lets the
    /// writer collect the reports: the state a test then asserts is settled.
    fn settle<W>(w: &mut Writer<W>) {
        assert!(w.sink.wait_idle(Instant::now() + LONG));
        w.on_tick(Instant::now()).unwrap();
    }

    fn got(rx: &mpsc::Receiver<String>) -> Vec<String> {
        rx.try_iter().collect()
    }

    /// An ack read now (after everything so far was written).
    fn ack(ok: bool) -> Stamped {
        Stamped { incoming: if ok { Incoming::Done } else { Incoming::Error }, read_at: Instant::now() }
    }

    fn line(text: &str) -> Stamped {
        Stamped { incoming: crate::exabgp::parse_line(text), read_at: Instant::now() }
    }

    /// Reads what the pipe's reader thread got, waiting for `n` lines.
    fn wait_lines(rx: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
        let mut v = Vec::new();
        while v.len() < n {
            v.push(rx.recv_timeout(LONG).expect("line"));
        }
        v
    }

    #[test]
    fn one_command_in_flight_until_its_ack() {
        let t0 = Instant::now();
        let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(2)));
        w.send("announce route 198.51.100.1/32 next-hop self".into(), None, t0).unwrap();
        w.send("announce route 198.51.100.2/32 next-hop self".into(), None, t0).unwrap();
        settle(&mut w);
        assert_eq!(wait_lines(&rx, 1), ["announce route 198.51.100.1/32 next-hop self"]);
        let written = w.in_flight.front().unwrap().written_at.unwrap();
        assert_eq!(w.deadline(), Some(written + Duration::from_secs(2)));
        assert_eq!(w.on_stdin(ack(true), Instant::now()).unwrap(), Routed::Taken);
        settle(&mut w);
        assert_eq!(wait_lines(&rx, 1), ["announce route 198.51.100.2/32 next-hop self"]);
        w.on_stdin(ack(false), Instant::now()).unwrap();
        assert!(w.is_idle());
        assert_eq!(w.counters(), Counters { lines: 2, done: 1, error: 1, ..Counters::default() });
    }

    #[test]
    fn an_ack_read_before_the_command_was_written_is_stray() {
        let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(2)));
        let early = Instant::now(); // ExaBGP's late `done` for something else
        w.send("a".into(), None, Instant::now()).unwrap();
        settle(&mut w);
        wait_lines(&rx, 1);
        let stray = Stamped { incoming: Incoming::Done, read_at: early };
        assert_eq!(w.on_stdin(stray, Instant::now()).unwrap(), Routed::Taken);
        assert_eq!(w.counters().stray, 1);
        assert_eq!(w.in_flight(), 1, "`a` still waits for its own ack");
        w.send("b".into(), None, Instant::now()).unwrap();
        settle(&mut w);
        assert_eq!(got(&rx), Vec::<String>::new(), "`b` waits");
        w.on_stdin(ack(true), Instant::now()).unwrap();
        assert_eq!(w.counters().done, 1);
        settle(&mut w);
        assert_eq!(wait_lines(&rx, 1), ["b"]);
        // With nothing in flight, an ack is stray too.
        w.on_stdin(ack(true), Instant::now()).unwrap();
        w.on_stdin(ack(true), Instant::now()).unwrap();
        assert_eq!((w.counters().done, w.counters().stray), (2, 2));
    }

    #[test]
    fn an_ack_that_beats_the_write_report_waits_for_it() {
        let (mut w, _rx) = writer(AckMode::Wait(Duration::from_secs(2)));
        w.send("a".into(), None, Instant::now()).unwrap();
        // Do not collect the report: the ack comes "first".
        assert!(w.sink.wait_idle(Instant::now() + LONG));
        let read_at = Instant::now();
        w.parked.push_back((true, read_at));
        assert!(w.in_flight.front().unwrap().written_at.is_none());
        w.on_tick(Instant::now()).unwrap();
        assert_eq!(w.counters().done, 1);
        assert!(w.is_idle());
    }

    #[test]
    fn a_missing_ack_times_out_and_the_next_command_goes() {
        let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(2)));
        w.on_stdin(ack(true), Instant::now()).unwrap(); // acks do work on this ExaBGP (a stray one)
        w.send("a".into(), None, Instant::now()).unwrap();
        w.send("b".into(), None, Instant::now()).unwrap();
        settle(&mut w);
        let written = w.in_flight.front().unwrap().written_at.unwrap();
        w.on_tick(written + Duration::from_secs(1)).unwrap();
        settle(&mut w);
        assert_eq!(wait_lines(&rx, 1), ["a"]);
        assert_eq!(got(&rx), Vec::<String>::new());
        w.on_tick(written + Duration::from_secs(2)).unwrap();
        settle(&mut w);
        assert_eq!(wait_lines(&rx, 1), ["b"]);
        assert_eq!(w.counters().missing, 1);
    }

    #[test]
    fn never_any_ack_switches_to_no_wait() {
        let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(1)));
        for l in ["a", "b", "c", "d", "e"] {
            w.send(l.into(), None, Instant::now()).unwrap();
        }
        for _ in 0..3 {
            settle(&mut w);
            let written = w.in_flight.front().unwrap().written_at.unwrap();
            w.on_tick(written + Duration::from_secs(1)).unwrap();
        }
        settle(&mut w);
        assert_eq!(wait_lines(&rx, 5), ["a", "b", "c", "d", "e"]);
        assert!(w.is_idle());
        assert_eq!(w.deadline(), None);
        assert!(!w.query(adj_rib_query(), Instant::now()).unwrap(), "no query without acks");
    }

    fn adj_rib_query() -> String {
        crate::exabgp::adj_rib::QUERY.to_string()
    }

    #[test]
    fn a_newer_line_for_the_same_key_supersedes_a_queued_one() {
        let k = |s: &str| Some(s.to_string());
        let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(1)));
        let now = Instant::now();
        w.send("announce p1 med 100".into(), k("p1"), now).unwrap();
        w.send("announce p1 med 1000".into(), k("p1"), now).unwrap();
        w.send("withdraw p2".into(), None, now).unwrap();
        w.send("announce p1 med 100".into(), k("p1"), now).unwrap();
        for _ in 0..3 {
            settle(&mut w);
            w.on_stdin(ack(true), Instant::now()).unwrap();
        }
        assert_eq!(wait_lines(&rx, 3), ["announce p1 med 100", "withdraw p2", "announce p1 med 100"]);
        assert!(w.is_idle());
    }

    #[test]
    fn no_wait_writes_everything_and_send_now_jumps_the_queue() {
        let (mut w, rx) = writer(AckMode::NoWait);
        w.send("a".into(), None, Instant::now()).unwrap();
        w.send("b".into(), None, Instant::now()).unwrap();
        settle(&mut w);
        assert_eq!(wait_lines(&rx, 2), ["a", "b"]);
        assert!(w.is_idle());
        let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(1)));
        w.send("a".into(), None, Instant::now()).unwrap();
        w.send("stale".into(), None, Instant::now()).unwrap();
        settle(&mut w);
        w.send_now(&["x".into(), "y".into()], Instant::now()).unwrap();
        settle(&mut w);
        assert_eq!(wait_lines(&rx, 3), ["a", "x", "y"]);
        assert_eq!(w.in_flight(), 3);
    }

    #[test]
    fn a_query_collects_its_answer_until_done() {
        let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(2)));
        assert!(w.query(adj_rib_query(), Instant::now()).unwrap());
        settle(&mut w);
        assert_eq!(wait_lines(&rx, 1), [adj_rib_query()]);
        let answer = [
            "neighbor 127.0.40.1 ipv4 unicast 198.51.100.5/32 next-hop 127.0.40.2",
            "127.0.40.1 ipv4 unicast 198.51.100.6/32 next-hop 198.51.100.254",
        ];
        assert_eq!(w.on_stdin(line(answer[0]), Instant::now()).unwrap(), Routed::Taken);
        // Session events and JSON still reach the engine.
        let event = w.on_stdin(line("neighbor 127.0.40.1 down - peer reset"), Instant::now()).unwrap();
        assert!(matches!(event, Routed::Event(Incoming::Neighbor(_))));
        assert!(matches!(w.on_stdin(line("{ \"type\": \"state\" }"), Instant::now()).unwrap(), Routed::Event(_)));
        assert_eq!(w.on_stdin(line(answer[1]), Instant::now()).unwrap(), Routed::Taken);
        let done = w.on_stdin(ack(true), Instant::now()).unwrap();
        assert_eq!(
            done,
            Routed::Answer(Answer {
                command: adj_rib_query(),
                lines: answer.map(String::from).to_vec(),
                ok: true,
                complete: true,
                behind: 0
            })
        );
        // After the query, such lines are the engine's again.
        assert!(matches!(w.on_stdin(line(answer[1]), Instant::now()).unwrap(), Routed::Event(Incoming::Other(_))));
    }

    #[test]
    fn a_query_waits_its_turn_and_only_one_of_each_waits() {
        let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(2)));
        w.send("a".into(), None, Instant::now()).unwrap();
        for _ in 0..3 {
            w.query(adj_rib_query(), Instant::now()).unwrap();
        }
        settle(&mut w);
        // Lines read while `a` is in flight are not the query's.
        assert!(matches!(w.on_stdin(line("127.0.0.1 ipv4 unicast x"), Instant::now()).unwrap(), Routed::Event(_)));
        w.on_stdin(ack(true), Instant::now()).unwrap();
        settle(&mut w);
        w.send("b".into(), None, Instant::now()).unwrap(); // behind the query
        assert_eq!(
            w.on_stdin(ack(false), Instant::now()).unwrap(),
            Routed::Answer(Answer { command: adj_rib_query(), lines: vec![], ok: false, complete: true, behind: 1 })
        );
        settle(&mut w);
        w.on_stdin(ack(true), Instant::now()).unwrap();
        assert!(w.is_idle());
        assert_eq!(wait_lines(&rx, 3), ["a".to_string(), adj_rib_query(), "b".to_string()]);
    }

    #[test]
    fn keyless_lines_are_capped() {
        let (mut w, _rx) = writer(AckMode::Wait(Duration::from_secs(2)));
        for i in 0..MAX_KEYLESS + 10 {
            w.send(format!("withdraw route {i}"), None, Instant::now()).unwrap();
        }
        // One went to the sink; the cap waits here; the rest were dropped.
        assert_eq!(w.queue.len(), MAX_KEYLESS);
        assert_eq!(w.counters().dropped, 9);
    }

    /// A pipe whose reader never reads: once its 64 KiB are full the
    /// engine-side calls still return at once, memory stays bounded, and the
    /// final flush returns at its deadline having written nothing more than
    /// whole lines.
    #[test]
    fn a_reader_that_stops_reading_never_blocks_the_engine() {
        let (reader, w_end): (PipeReader, _) = io::pipe().unwrap();
        let mut w = Writer::new(w_end, AckMode::NoWait).unwrap();
        let started = Instant::now();
        let routes = 50;
        for i in 0..20_000 {
            let r = i % routes;
            let line = format!("announce route 198.51.100.{r}/32 next-hop self med {i} community [ 65000:1 65000:2 ]");
            w.send(line, Some(format!("r{r}")), Instant::now()).unwrap();
            w.on_tick(Instant::now()).unwrap();
        }
        let took = started.elapsed();
        // 20 000 lines of ~80 bytes are 1.6 MB: far more than the pipe holds.
        assert!(!w.is_idle());
        assert!(w.queue.len() <= routes, "queue {} > one line per route", w.queue.len());
        assert!(took < Duration::from_secs(5), "sending took {took:?}");
        let deadline = Instant::now() + Duration::from_millis(300);
        let finals: Vec<String> = (0..5).map(|i| format!("withdraw route 198.51.100.{i}/32")).collect();
        let written = w.flush_final(&finals, deadline);
        let late = Instant::now().saturating_duration_since(deadline);
        assert!(Instant::now() >= deadline);
        assert!(late < Duration::from_secs(2), "flush_final returned {late:?} after its deadline");
        assert_eq!(written, 0, "the pipe stayed full");
        drop(w);
        // Now read everything: whole lines only, and no final line (the
        // deadline passed, nothing more was started).
        let text = io::read_to_string(reader).unwrap();
        assert!(text.ends_with('\n'));
        assert!(text.lines().all(|l| l.starts_with("announce route 198.51.100.") && l.ends_with(" ]")));
        assert!(!text.contains("withdraw"));
    }

    #[test]
    fn flush_final_writes_the_final_lines_first_when_the_pipe_drains() {
        let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(2)));
        w.send("a".into(), None, Instant::now()).unwrap();
        w.send("queued".into(), None, Instant::now()).unwrap();
        settle(&mut w);
        let n = w.flush_final(&["x".into(), "y".into()], Instant::now() + LONG);
        assert_eq!(n, 2);
        assert_eq!(wait_lines(&rx, 3), ["a", "x", "y"]);
        w.send("after".into(), None, Instant::now()).ok();
        drop(w);
        assert_eq!(rx.recv_timeout(Duration::from_millis(100)).ok(), None, "nothing after the final flush");
    }

    #[test]
    fn a_write_error_is_returned() {
        let (r, w_end) = io::pipe().unwrap();
        drop(r);
        let mut w = Writer::new(w_end, AckMode::NoWait).unwrap();
        w.send("a".into(), None, Instant::now()).unwrap();
        assert!(!w.sink.wait_idle(Instant::now() + LONG));
        assert_eq!(w.on_tick(Instant::now()).map_err(|e| e.kind()), Err(io::ErrorKind::BrokenPipe));
    }
}
