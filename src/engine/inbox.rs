//! The bounded queue of ExaBGP's lines between the stdin thread and the
//! engine.
//!
//! The stdin thread must always read (a child that stops reading its stdin
//! freezes ExaBGP once the pipe fills), but whatever writes to us must not
//! be able to grow exaprobe's memory: a flood of lines (a misbehaving
//! ExaBGP, or `yes done | exaprobe`) would otherwise queue without bound
//! and, worse, delay a SIGTERM queued behind it. So the lines wait here, at
//! most [`MAX_BYTES`] of them; beyond that a line is dropped and counted (a
//! real ExaBGP sends one ack per command and a few events, far below it). A
//! `shutdown` is never dropped. The engine is woken once per batch: only the
//! line that finds the queue empty sends [`super::Event::StdinReady`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::exabgp::{Incoming, Stamped};

/// Most bytes of lines waiting for the engine.
pub const MAX_BYTES: usize = 16 << 20;

/// The queue.
#[derive(Debug, Default)]
pub struct Inbox {
    lines: Mutex<(VecDeque<Stamped>, usize)>,
    dropped: AtomicU64,
}

/// What a queued line costs: its slot, and its text.
fn size(line: &Stamped) -> usize {
    std::mem::size_of::<Stamped>()
        + match &line.incoming {
            Incoming::Neighbor(s) | Incoming::Other(s) => s.len(),
            _ => 0,
        }
}

impl Inbox {
    /// Queues a line; returns true when the engine must be woken (the queue
    /// was empty).
    pub fn push(&self, line: Stamped) -> bool {
        let mut q = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let n = size(&line);
        if q.1 + n > MAX_BYTES && line.incoming != Incoming::Shutdown {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        q.1 += n;
        q.0.push_back(line);
        q.0.len() == 1
    }

    /// Takes every queued line.
    pub fn take(&self) -> VecDeque<Stamped> {
        let mut q = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        q.1 = 0;
        std::mem::take(&mut q.0)
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn l(incoming: Incoming) -> Stamped {
        Stamped { incoming, read_at: Instant::now() }
    }

    #[test]
    fn bounded_wakes_once_per_batch_and_keeps_shutdown() {
        let inbox = Inbox::default();
        assert!(inbox.push(l(Incoming::Done)), "the first line wakes the engine");
        assert!(!inbox.push(l(Incoming::Error)), "later ones ride along");
        let big = "x".repeat(1 << 16);
        let mut pushed = 2;
        while inbox.dropped() == 0 {
            inbox.push(l(Incoming::Other(big.clone())));
            pushed += 1;
            assert!(pushed < 1000, "never bounded");
        }
        assert!(inbox.push(l(Incoming::Shutdown)) || inbox.dropped() == 1, "shutdown is kept");
        let got = inbox.take();
        assert_eq!(got.front().map(|s| &s.incoming), Some(&Incoming::Done));
        assert_eq!(got.back().map(|s| &s.incoming), Some(&Incoming::Shutdown));
        assert!(got.iter().map(size).sum::<usize>() <= MAX_BYTES + size(&l(Incoming::Shutdown)));
        assert!(inbox.take().is_empty());
        assert!(inbox.push(l(Incoming::Done)), "empty again: wakes again");
    }
}
