//! What ExaBGP writes on our stdin: the line classifier [`parse_line`] and the
//! reader loop [`read_lines`].
//!
//! Guarantees:
//! - **Total**: any bytes give some [`Incoming`]; nothing here panics. Bytes
//!   that are not UTF-8 go through [`String::from_utf8_lossy`].
//! - **Bounded**: a line holds at most [`MAX_LINE`] bytes in memory. A longer
//!   line (ExaBGP never writes one; a broken or hostile writer could) is
//!   discarded up to its newline, counted, and logged once with its length;
//!   the lines after it are read normally.
//! - **Drained**: the reader never stops before EOF (or a read error), so
//!   ExaBGP's pipe to us never fills (ExaBGP blocks in `write(2)`, keepalives
//!   included, when it does).
//! - **Stamped**: each line carries the [`Instant`] it was read, taken after
//!   the `read(2)` that returned its newline. The writer uses it to tell an
//!   ack from a stray `done` (see [`super::writer`]).

use std::io::{self, Read};
use std::time::Instant;

/// Longest line kept, newline excluded: 64 KiB. ExaBGP's longest lines are
/// `show adj-rib out extensive` answers with many communities, well under
/// 4 KiB; anything longer is not a line ExaBGP wrote on purpose.
pub const MAX_LINE: usize = 64 * 1024;

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
    /// Anything else: JSON events, answers to queries (`show adj-rib out`).
    Other(String),
}

/// A line as read: what it is and when it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamped {
    /// The classified line.
    pub incoming: Incoming,
    /// When the reader got its newline (after the `read(2)` returned).
    pub read_at: Instant,
}

/// Classifies one line from ExaBGP (with or without its newline).
pub fn parse_line(line: &str) -> Incoming {
    let line = line.trim();
    match line {
        "done" => Incoming::Done,
        "error" => Incoming::Error,
        "" => Incoming::Empty,
        _ if line == "shutdown" || line.starts_with("shutdown ") => Incoming::Shutdown,
        _ if is_neighbor_event(line) => Incoming::Neighbor(line.to_string()),
        // The JSON encoder reports shutdown as a notification.
        _ if line.starts_with('{') && line.contains("\"notification\"") && line.contains("shutdown") => {
            Incoming::Shutdown
        }
        _ => Incoming::Other(line.to_string()),
    }
}

/// `neighbor <ip> connected|up|down …`, and not a 4.2 `show adj-rib out`
/// answer, which also starts with `neighbor <ip>`.
fn is_neighbor_event(line: &str) -> bool {
    let mut words = line.split_ascii_whitespace();
    words.next() == Some("neighbor")
        && words.next().is_some()
        && matches!(words.next(), Some("connected" | "up" | "down"))
}

/// Reads ExaBGP's lines until EOF and hands each to `on_line`, stamped with
/// when it was read; `None` means EOF (or a read error): ExaBGP is gone.
///
/// Reads in chunks of 8 KiB; memory is bounded by twice [`MAX_LINE`] plus
/// one chunk whatever comes. A final line without a newline is still
/// delivered.
pub fn read_lines(mut input: impl Read, mut on_line: impl FnMut(Option<Stamped>)) {
    let mut chunk = vec![0u8; 8192];
    let mut splitter = Splitter::default();
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("reading ExaBGP's lines on stdin: {e}");
                break;
            }
        };
        splitter.feed(&chunk[..n], &mut on_line);
    }
    splitter.finish(&mut on_line);
    on_line(None);
}

/// Cuts bytes into lines of at most [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
struct Splitter {
    line: Vec<u8>,
    /// Length so far of the line being discarded, if one is.
    discarding: Option<usize>,
    /// Over-long lines discarded so far.
    discarded: u64,
}

impl Splitter {
    fn feed(&mut self, mut bytes: &[u8], on_line: &mut impl FnMut(Option<Stamped>)) {
        while !bytes.is_empty() {
            let (part, newline) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            bytes = if newline { &bytes[part.len() + 1..] } else { &[] };
            match &mut self.discarding {
                Some(len) => *len += part.len(),
                None if self.line.len() + part.len() > MAX_LINE => {
                    self.discarding = Some(self.line.len() + part.len());
                    self.line = Vec::new(); // give the memory back
                }
                None => self.line.extend_from_slice(part),
            }
            if newline {
                self.end_line(on_line);
            }
        }
    }

    fn end_line(&mut self, on_line: &mut impl FnMut(Option<Stamped>)) {
        if let Some(len) = self.discarding.take() {
            self.discarded += 1;
            if self.discarded == 1 {
                log::warn!(
                    "discarded a line of {len} bytes on stdin (longest kept: {MAX_LINE} bytes); \
                     further over-long lines are counted, not logged"
                );
            }
        } else {
            let text = String::from_utf8_lossy(&self.line);
            on_line(Some(Stamped { incoming: parse_line(&text), read_at: Instant::now() }));
            self.line.clear();
        }
    }

    fn finish(&mut self, on_line: &mut impl FnMut(Option<Stamped>)) {
        if self.discarding.is_some() || !self.line.is_empty() {
            self.end_line(on_line);
        }
        if self.discarded > 1 {
            log::warn!("discarded {} over-long lines on stdin in all", self.discarded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_of(input: &[u8]) -> Vec<Option<Incoming>> {
        let mut got = Vec::new();
        read_lines(input, |l| got.push(l.map(|s| s.incoming)));
        got
    }

    #[test]
    fn parses_exabgp_lines() {
        assert_eq!(parse_line("done\n"), Incoming::Done);
        assert_eq!(parse_line("error"), Incoming::Error);
        assert_eq!(parse_line("shutdown 21638 21488"), Incoming::Shutdown);
        assert_eq!(parse_line(""), Incoming::Empty);
        assert_eq!(parse_line("neighbor 127.0.0.2 up"), Incoming::Neighbor("neighbor 127.0.0.2 up".into()));
        assert_eq!(
            parse_line("neighbor 127.0.40.1 down - stop, message [shutting down]"),
            Incoming::Neighbor("neighbor 127.0.40.1 down - stop, message [shutting down]".into())
        );
        assert_eq!(
            parse_line(r#"{ "exabgp": "5.0.0", "type": "notification", "notification": "shutdown"}"#),
            Incoming::Shutdown
        );
        assert!(matches!(parse_line("exabgp 5.0.15"), Incoming::Other(_)));
        // A 4.2 `show adj-rib out` answer is not a session event.
        assert!(matches!(
            parse_line("neighbor 127.0.40.1 ipv4 unicast 198.51.100.5/32 next-hop 127.0.40.2"),
            Incoming::Other(_)
        ));
    }

    #[test]
    fn reader_reports_every_line_then_eof() {
        assert_eq!(
            lines_of(b"done\nerror\nshutdown 1 2\n\nlast"),
            [
                Some(Incoming::Done),
                Some(Incoming::Error),
                Some(Incoming::Shutdown),
                Some(Incoming::Empty),
                Some(Incoming::Other("last".into())),
                None
            ]
        );
    }

    #[test]
    fn lines_are_stamped_in_reading_order() {
        let before = Instant::now();
        let mut stamps = Vec::new();
        read_lines(&b"done\ndone\n"[..], |l| stamps.extend(l.map(|s| s.read_at)));
        assert_eq!(stamps.len(), 2);
        assert!(before <= stamps[0] && stamps[0] <= stamps[1]);
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_kept_one_more_byte_is_not() {
        let mut input = vec![b'x'; MAX_LINE];
        input.extend_from_slice(b"\n");
        input.extend(vec![b'y'; MAX_LINE + 1]);
        input.extend_from_slice(b"\ndone\n");
        let got = lines_of(&input);
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[0], Some(Incoming::Other(s)) if s.len() == MAX_LINE));
        assert_eq!(got[1], Some(Incoming::Done));
    }

    /// A multi-MiB line through a real pipe: discarded, the reader's memory
    /// stays bounded (no line buffer larger than the limit ever exists: the
    /// lines handed on are short), and the lines after it arrive.
    #[test]
    fn a_huge_line_through_a_pipe_is_discarded_and_later_lines_are_read() {
        let (reader, mut writer) = io::pipe().unwrap();
        let feeder = std::thread::spawn(move || {
            let chunk = vec![b'a'; 1 << 20];
            writer.write_all(b"done\n").unwrap();
            for _ in 0..8 {
                writer.write_all(&chunk).unwrap();
            }
            writer.write_all(b"\nerror\n").unwrap();
            for _ in 0..8 {
                writer.write_all(&chunk).unwrap(); // no newline, then EOF
            }
        });
        let mut got = Vec::new();
        let mut longest = 0;
        read_lines(reader, |l| {
            if let Some(Stamped { incoming: Incoming::Other(s), .. }) = &l {
                longest = longest.max(s.len());
            }
            got.push(l.map(|s| s.incoming));
        });
        feeder.join().unwrap();
        assert_eq!(got, [Some(Incoming::Done), Some(Incoming::Error), None]);
        assert_eq!(longest, 0);
    }

    #[test]
    fn the_line_buffer_stays_bounded_while_a_huge_line_streams_in() {
        let mut s = Splitter::default();
        let mut got = Vec::new();
        let chunk = vec![b'a'; 8192];
        for _ in 0..1024 {
            s.feed(&chunk, &mut |l| got.push(l));
            assert!(s.line.capacity() <= 2 * MAX_LINE, "buffer grew to {}", s.line.capacity());
        }
        assert_eq!(s.discarding, Some(8 << 20));
        s.feed(b"\ndone\n", &mut |l| got.push(l));
        assert_eq!(s.discarded, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().map(|l| &l.incoming), Some(&Incoming::Done));
    }

    #[test]
    fn any_bytes_give_lines_never_a_panic() {
        let got = lines_of(b"\xff\xfe done \r\n\x00\n\xc3");
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], None);
    }

    proptest::proptest! {
        #[test]
        fn reader_is_total(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let got = lines_of(&bytes);
            let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
            proptest::prop_assert!(got.len() == newlines + 1 || got.len() == newlines + 2);
            proptest::prop_assert_eq!(got.last(), Some(&None));
        }
    }
}
