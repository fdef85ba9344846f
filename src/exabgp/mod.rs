//! The channel to ExaBGP: the single stdout writer, ack tracking, and the
//! parser for what ExaBGP writes on our stdin.
//!
//! stdout is a protocol: one command per line, flushed per command, nothing
//! else ever. With acks on (ExaBGP's default) one command is in flight at a
//! time and the next waits for its `done`/`error`, because acks for
//! pipelined commands can come back out of order and ExaBGP 4.2 sends no ack
//! at all for some malformed commands. Waiting is never blocking: the engine
//! feeds acks and clock ticks to [`Writer`], which is therefore testable
//! without threads or sleeps.

pub mod encoder;

use std::collections::VecDeque;
use std::io::{self, BufRead, Write};
use std::time::{Duration, Instant};

/// A line ExaBGP wrote to us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// `done`: the previous command was accepted.
    Done,
    /// `error`: the previous command was refused.
    Error,
    /// `shutdown …`: ExaBGP is stopping; SIGTERM follows.
    Shutdown,
    /// `neighbor <ip> up|down|connected …`: a BGP session event.
    Neighbor(String),
    /// An empty line (ExaBGP follows events with one).
    Empty,
    /// Anything else: JSON events, answers to commands we never send.
    Other(String),
}

/// Classifies one line from ExaBGP (without its newline).
pub fn parse_line(line: &str) -> Incoming {
    let line = line.trim();
    match line {
        "done" => Incoming::Done,
        "error" => Incoming::Error,
        "" => Incoming::Empty,
        _ if line == "shutdown" || line.starts_with("shutdown ") => Incoming::Shutdown,
        _ if line.starts_with("neighbor ") => Incoming::Neighbor(line.to_string()),
        // The JSON encoder reports shutdown as a notification.
        _ if line.starts_with('{') && line.contains("\"notification\"") && line.contains("shutdown") => {
            Incoming::Shutdown
        }
        _ => Incoming::Other(line.to_string()),
    }
}

/// Reads ExaBGP's lines until EOF and hands each to `on_line`; `None` means
/// EOF (or a read error): ExaBGP is gone. Reading never stops before that, so
/// ExaBGP's pipe to us never fills.
pub fn read_lines(input: impl BufRead, mut on_line: impl FnMut(Option<Incoming>)) {
    let mut input = input;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => on_line(Some(parse_line(&String::from_utf8_lossy(&buf)))),
        }
    }
    on_line(None);
}

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
    /// Lines written.
    pub lines: u64,
    /// `done` acks.
    pub done: u64,
    /// `error` acks.
    pub error: u64,
    /// Commands whose ack never came.
    pub missing: u64,
}

/// After this many missed acks in a row, with none ever received, exaprobe
/// concludes that ExaBGP runs with acks off and stops waiting.
const MISSES_BEFORE_NO_ACK: u32 = 3;

/// The single writer of stdout.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    mode: AckMode,
    queue: VecDeque<(Option<String>, String)>,
    in_flight: VecDeque<(String, Instant)>,
    misses_in_row: u32,
    counters: Counters,
}

impl<W: Write> Writer<W> {
    /// A writer over `out`.
    pub fn new(out: W, mode: AckMode) -> Self {
        Writer {
            out,
            mode,
            queue: VecDeque::new(),
            in_flight: VecDeque::new(),
            misses_in_row: 0,
            counters: Counters::default(),
        }
    }

    /// Queues a command and writes it as soon as the channel allows.
    ///
    /// A command with a `key` supersedes queued, not yet written commands
    /// with the same key: when a route changes state again while ExaBGP is
    /// slow to ack, only its newest line is sent. Commands without a key are
    /// always sent.
    pub fn send(&mut self, line: String, key: Option<String>, now: Instant) -> io::Result<()> {
        debug_assert!(!line.contains(['\n', '\r']), "a command must be one line");
        if key.is_some() {
            self.queue.retain(|(k, _)| *k != key);
        }
        self.queue.push_back((key, line));
        self.pump(now)
    }

    /// Writes `lines` at once, ahead of anything queued, without waiting for
    /// acks between them. For shutdown, where time is short; the queue is
    /// dropped.
    pub fn send_now(&mut self, lines: &[String], now: Instant) -> io::Result<()> {
        self.queue.clear();
        for line in lines {
            self.write(line, now)?;
        }
        Ok(())
    }

    /// Handles a `done` (`ok`) or `error` ack.
    pub fn on_ack(&mut self, ok: bool, now: Instant) -> io::Result<()> {
        self.misses_in_row = 0;
        if ok {
            self.counters.done += 1;
        } else {
            self.counters.error += 1;
        }
        match self.in_flight.pop_front() {
            Some((line, _)) if ok => log::debug!("ExaBGP accepted: {line}"),
            Some((line, _)) => log::error!("ExaBGP answered `error` to: {line} (see ExaBGP's log for why)"),
            None if ok => log::debug!("ack `done` with no command in flight"),
            None => log::warn!("ack `error` with no command in flight"),
        }
        self.pump(now)
    }

    /// When the oldest command in flight stops waiting for its ack.
    pub fn deadline(&self) -> Option<Instant> {
        match self.mode {
            AckMode::Wait(t) => self.in_flight.front().map(|(_, sent)| *sent + t),
            AckMode::NoWait => None,
        }
    }

    /// Gives up on acks whose deadline has passed, then writes what waits.
    pub fn on_tick(&mut self, now: Instant) -> io::Result<()> {
        let AckMode::Wait(timeout) = self.mode else { return Ok(()) };
        while let Some((line, sent)) = self.in_flight.front() {
            if now < *sent + timeout {
                break;
            }
            log::warn!(
                "no ack from ExaBGP within {} for: {line} (ExaBGP 4.2 does not answer some malformed commands; \
                 see its log)",
                crate::model::duration::show(timeout)
            );
            self.in_flight.pop_front();
            self.counters.missing += 1;
            self.misses_in_row += 1;
        }
        if self.misses_in_row >= MISSES_BEFORE_NO_ACK && self.counters.done + self.counters.error == 0 {
            log::warn!(
                "no ack ever came from ExaBGP: assuming exabgp.api.ack=false and no longer waiting for acks \
                 (pass --no-ack to say so)"
            );
            self.mode = AckMode::NoWait;
            self.in_flight.clear();
        }
        self.pump(now)
    }

    /// True when nothing is queued or waiting for an ack.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty()
    }

    /// The keys of the commands queued and not yet written.
    pub fn queued_keys(&self) -> impl Iterator<Item = &str> {
        self.queue.iter().filter_map(|(k, _)| k.as_deref())
    }

    /// Commands written whose ack has not come.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    fn pump(&mut self, now: Instant) -> io::Result<()> {
        while self.in_flight.is_empty() || self.mode == AckMode::NoWait {
            let Some((_, line)) = self.queue.pop_front() else { break };
            self.write(&line, now)?;
        }
        Ok(())
    }

    fn write(&mut self, line: &str, now: Instant) -> io::Result<()> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        self.counters.lines += 1;
        log::debug!("sent: {line}");
        if let AckMode::Wait(_) = self.mode {
            self.in_flight.push_back((line.to_string(), now));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(w: &Writer<Vec<u8>>) -> Vec<String> {
        String::from_utf8(w.out.clone()).unwrap().lines().map(String::from).collect()
    }

    #[test]
    fn parses_exabgp_lines() {
        assert_eq!(parse_line("done\n"), Incoming::Done);
        assert_eq!(parse_line("error"), Incoming::Error);
        assert_eq!(parse_line("shutdown 21638 21488"), Incoming::Shutdown);
        assert_eq!(parse_line(""), Incoming::Empty);
        assert_eq!(parse_line("neighbor 127.0.0.2 up"), Incoming::Neighbor("neighbor 127.0.0.2 up".into()));
        assert_eq!(
            parse_line(r#"{ "exabgp": "5.0.0", "type": "notification", "notification": "shutdown"}"#),
            Incoming::Shutdown
        );
        assert!(matches!(parse_line("exabgp 5.0.15"), Incoming::Other(_)));
    }

    #[test]
    fn reader_reports_every_line_then_eof() {
        let mut got = Vec::new();
        read_lines(&b"done\nerror\nshutdown 1 2\n\n"[..], |l| got.push(l));
        assert_eq!(
            got,
            [Some(Incoming::Done), Some(Incoming::Error), Some(Incoming::Shutdown), Some(Incoming::Empty), None]
        );
    }

    #[test]
    fn one_command_in_flight_until_its_ack() {
        let t0 = Instant::now();
        let mut w = Writer::new(Vec::new(), AckMode::Wait(Duration::from_secs(2)));
        w.send("announce route 198.51.100.1/32 next-hop self".into(), None, t0).unwrap();
        w.send("announce route 198.51.100.2/32 next-hop self".into(), None, t0).unwrap();
        assert_eq!(written(&w).len(), 1);
        assert_eq!(w.deadline(), Some(t0 + Duration::from_secs(2)));
        w.on_ack(true, t0).unwrap();
        assert_eq!(written(&w).len(), 2);
        w.on_ack(false, t0).unwrap();
        assert!(w.is_idle());
        assert_eq!(w.counters(), Counters { lines: 2, done: 1, error: 1, missing: 0 });
    }

    #[test]
    fn a_missing_ack_times_out_and_the_next_command_goes() {
        let t0 = Instant::now();
        let mut w = Writer::new(Vec::new(), AckMode::Wait(Duration::from_secs(2)));
        w.on_ack(true, t0).unwrap(); // acks do work on this ExaBGP
        w.send("a".into(), None, t0).unwrap();
        w.send("b".into(), None, t0).unwrap();
        w.on_tick(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(written(&w), ["a"]);
        w.on_tick(t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(written(&w), ["a", "b"]);
        assert_eq!(w.counters().missing, 1);
        assert_eq!(w.deadline(), Some(t0 + Duration::from_secs(4)));
    }

    #[test]
    fn never_any_ack_switches_to_no_wait() {
        let t0 = Instant::now();
        let mut w = Writer::new(Vec::new(), AckMode::Wait(Duration::from_secs(1)));
        for (i, l) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            w.send(l.into(), None, t0 + Duration::from_secs(i as u64)).unwrap();
        }
        for s in 1..=3 {
            w.on_tick(t0 + Duration::from_secs(10 * s)).unwrap();
        }
        assert_eq!(written(&w), ["a", "b", "c", "d", "e"]);
        assert!(w.is_idle());
        assert_eq!(w.deadline(), None);
    }

    #[test]
    fn a_newer_line_for_the_same_key_supersedes_a_queued_one() {
        let t0 = Instant::now();
        let k = |s: &str| Some(s.to_string());
        let mut w = Writer::new(Vec::new(), AckMode::Wait(Duration::from_secs(1)));
        w.send("announce p1 med 100".into(), k("p1"), t0).unwrap();
        w.send("announce p1 med 1000".into(), k("p1"), t0).unwrap();
        w.send("withdraw p2".into(), None, t0).unwrap();
        w.send("announce p1 med 100".into(), k("p1"), t0).unwrap();
        for _ in 0..3 {
            w.on_ack(true, t0).unwrap();
        }
        assert_eq!(written(&w), ["announce p1 med 100", "withdraw p2", "announce p1 med 100"]);
    }

    #[test]
    fn no_wait_writes_everything_and_send_now_jumps_the_queue() {
        let t0 = Instant::now();
        let mut w = Writer::new(Vec::new(), AckMode::NoWait);
        w.send("a".into(), None, t0).unwrap();
        w.send("b".into(), None, t0).unwrap();
        assert_eq!(written(&w), ["a", "b"]);
        let mut w = Writer::new(Vec::new(), AckMode::Wait(Duration::from_secs(1)));
        w.send("a".into(), None, t0).unwrap();
        w.send("stale".into(), None, t0).unwrap();
        w.send_now(&["x".into(), "y".into()], t0).unwrap();
        assert_eq!(written(&w), ["a", "x", "y"]);
        assert_eq!(w.in_flight(), 3);
    }
}
