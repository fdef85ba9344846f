//! The core's timers: one min-heap for every service's deadlines, so that an
//! event costs work in proportion to what changed, not to the number of
//! services.
//!
//! Each service has one slot per [`Kind`]. Re-arming a slot pushes a new
//! entry and leaves the old one in the heap; an entry is live only while it
//! still matches its slot, so stale ones are dropped when they surface
//! (lazy deletion). The heap is rebuilt from the slots when stale entries
//! outnumber live ones, which bounds it at twice the number of slots.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The next probe round.
    Probe = 0,
    /// Writing the current announcements again.
    Reassert = 1,
    /// A state machine timer: drain stage or expiry, end of a suppression.
    Fsm = 2,
}

const KINDS: usize = 3;

/// The timers of all services, addressed by service slot.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize, Kind)>>,
    slots: Vec<[Option<Instant>; KINDS]>,
}

impl Timers {
    /// Sets (or clears) a service's timer of one kind.
    pub fn set(&mut self, service: usize, kind: Kind, at: Option<Instant>) {
        if self.slots.len() <= service {
            self.slots.resize(service + 1, [None; KINDS]);
        }
        let slot = &mut self.slots[service][kind as usize];
        if *slot == at {
            return;
        }
        *slot = at;
        if let Some(at) = at {
            self.heap.push(Reverse((at, service, kind)));
            self.compact();
        }
    }

    /// Clears every timer of a service (it was removed).
    pub fn clear(&mut self, service: usize) {
        if let Some(s) = self.slots.get_mut(service) {
            *s = [None; KINDS];
        }
    }

    /// The earliest live deadline.
    pub fn earliest(&mut self) -> Option<Instant> {
        self.drop_stale();
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes the earliest timer due at `now`, clearing its slot. A probe
    /// timer is due up to `probe_slack` early: rounds due within it start
    /// together, on one wake-up, instead of one wake-up each.
    pub fn pop_due(&mut self, now: Instant, probe_slack: Duration) -> Option<(usize, Kind, Instant)> {
        self.drop_stale();
        let Reverse((at, service, kind)) = *self.heap.peek()?;
        let due = at <= now || (kind == Kind::Probe && at <= now + probe_slack);
        if !due {
            return None;
        }
        self.heap.pop();
        self.slots[service][kind as usize] = None;
        Some((service, kind, at))
    }

    fn is_live(&self, (at, service, kind): (Instant, usize, Kind)) -> bool {
        self.slots.get(service).is_some_and(|s| s[kind as usize] == Some(at))
    }

    fn drop_stale(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.is_live(*top) {
                return;
            }
            self.heap.pop();
        }
    }

    /// Rebuilds the heap from the slots when it holds mostly stale entries.
    fn compact(&mut self) {
        let live = self.slots.len() * KINDS;
        if self.heap.len() <= 2 * live.max(16) {
            return;
        }
        self.heap = self
            .slots
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                [Kind::Probe, Kind::Reassert, Kind::Fsm]
                    .into_iter()
                    .filter_map(move |k| s[k as usize].map(|at| Reverse((at, i, k))))
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_rearming_replaces() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut t = Timers::default();
        t.set(0, Kind::Probe, Some(t0 + s(5)));
        t.set(1, Kind::Probe, Some(t0 + s(3)));
        t.set(0, Kind::Fsm, Some(t0 + s(4)));
        // Re-armed later: the entry at 3 s is stale.
        t.set(1, Kind::Probe, Some(t0 + s(6)));
        assert_eq!(t.earliest(), Some(t0 + s(4)));
        // Only probe timers may be taken early.
        assert_eq!(t.pop_due(t0 + s(3), s(2)), None, "the Fsm timer at 4 s is not a probe");
        assert_eq!(t.pop_due(t0 + s(3), Duration::ZERO), None);
        assert_eq!(t.pop_due(t0 + s(10), Duration::ZERO), Some((0, Kind::Fsm, t0 + s(4))));
        assert_eq!(t.pop_due(t0 + s(10), Duration::ZERO), Some((0, Kind::Probe, t0 + s(5))));
        t.clear(1);
        assert_eq!(t.pop_due(t0 + s(10), Duration::ZERO), None);
        assert_eq!(t.earliest(), None);
        t.set(2, Kind::Probe, Some(t0 + s(12)));
        assert_eq!(t.pop_due(t0 + s(10), s(1)), None);
        assert_eq!(t.pop_due(t0 + s(10), s(2)), Some((2, Kind::Probe, t0 + s(12))), "a probe within the slack");
    }

    #[test]
    fn the_heap_stays_bounded() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        for i in 0..100_000u64 {
            t.set((i % 10) as usize, Kind::Probe, Some(t0 + Duration::from_millis(i)));
        }
        assert!(t.heap.len() <= 2 * 30 + 1, "{}", t.heap.len());
        assert_eq!(t.earliest(), Some(t0 + Duration::from_millis(99_990)));
    }
}
