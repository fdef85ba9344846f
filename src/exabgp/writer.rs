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
mod tests;
