//! The rise/fall hysteresis state machine: a pure function of the probe
//! results fed to it, with time passed in, so it is tested without sleeping.
//!
//! States are those of the bundled healthcheck minus its EXIT/END
//! bookkeeping: INIT, RISING, UP, FALLING, DOWN, DISABLED. What the routes
//! should look like is a separate [`Advert`] (UP, DOWN or DISABLED), and the
//! machine remembers which advert it last *asserted*. Lines are written only
//! when the asserted advert changes.
//!
//! Rules:
//! - `rise` consecutive successes are needed to assert UP, always;
//! - from an asserted UP, `fall` consecutive failures are needed to assert
//!   DOWN; a success in FALLING starts RISING again, and the route stays up;
//! - **crash safety**: ExaBGP keeps the routes of a process that died, so a
//!   fresh exaprobe cannot know what is announced. Until UP has been asserted,
//!   a failure asserts DOWN at once instead of waiting for `fall` failures;
//! - the maintenance file asserts DISABLED at once; when it goes away the
//!   machine starts over as from INIT (a failure asserts DOWN at once).

use std::fmt;
use std::time::{Duration, Instant};

use crate::service::Timing;

/// A state of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Started, no result yet.
    Init,
    /// This many consecutive successes, fewer than `rise`.
    Rising(u32),
    /// Healthy.
    Up,
    /// This many consecutive failures since UP, fewer than `fall`.
    Falling(u32),
    /// Not healthy.
    Down,
    /// The maintenance file exists.
    Disabled,
}

impl State {
    /// Upper-case name, without counters.
    pub fn name(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Rising(_) => "RISING",
            State::Up => "UP",
            State::Falling(_) => "FALLING",
            State::Down => "DOWN",
            State::Disabled => "DISABLED",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Rising(n) | State::Falling(n) => write!(f, "{}({n})", self.name()),
            _ => f.write_str(self.name()),
        }
    }
}

/// What the routes are asked to look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Advert {
    /// Announced with the UP attributes.
    Up,
    /// Withdrawn, or announced with the DOWN attributes.
    Down,
    /// Withdrawn, or announced with the DISABLED attributes.
    Disabled,
}

impl fmt::Display for Advert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Advert::Up => "UP",
            Advert::Down => "DOWN",
            Advert::Disabled => "DISABLED",
        })
    }
}

/// One input to the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Observation {
    /// The checks passed.
    Healthy,
    /// The checks failed.
    Unhealthy,
    /// The maintenance file exists (checks were not run).
    Disabled,
}

/// What one observation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// The advert to assert now, when it differs from the one asserted before.
    pub assert: Option<Advert>,
}

/// The hysteresis machine of one service.
#[derive(Clone, Debug)]
pub struct Fsm {
    rise: u32,
    fall: u32,
    state: State,
    asserted: Option<Advert>,
    since: Instant,
}

impl Fsm {
    /// A machine in INIT with nothing asserted. `rise` and `fall` below 1 are
    /// taken as 1.
    pub fn new(rise: u32, fall: u32, now: Instant) -> Self {
        Fsm { rise: rise.max(1), fall: fall.max(1), state: State::Init, asserted: None, since: now }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The advert last asserted, `None` before the first.
    pub fn asserted(&self) -> Option<Advert> {
        self.asserted
    }

    /// When the current state was entered.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// How long to wait before the next probe: `fast_interval` while the
    /// outcome is open (INIT, RISING, FALLING), `interval` otherwise.
    pub fn next_delay(&self, timing: &Timing) -> Duration {
        match self.state {
            State::Init | State::Rising(_) | State::Falling(_) => timing.fast_interval,
            State::Up | State::Down | State::Disabled => timing.interval,
        }
    }

    /// Feeds one observation made at `now`.
    pub fn observe(&mut self, obs: Observation, now: Instant) -> Step {
        let from = self.state;
        let to = self.next(obs);
        if to != from {
            self.state = to;
            self.since = now;
        }
        let want = match to {
            State::Up => Some(Advert::Up),
            State::Down => Some(Advert::Down),
            State::Disabled => Some(Advert::Disabled),
            State::Init | State::Rising(_) | State::Falling(_) => None,
        };
        let assert = want.filter(|w| Some(*w) != self.asserted);
        if assert.is_some() {
            self.asserted = assert;
        }
        Step { from, to, assert }
    }

    fn next(&self, obs: Observation) -> State {
        let rising = |n: u32| if n >= self.rise { State::Up } else { State::Rising(n) };
        let falling = |n: u32| if n >= self.fall { State::Down } else { State::Falling(n) };
        let up_asserted = self.asserted == Some(Advert::Up);
        match (obs, self.state) {
            (Observation::Disabled, _) => State::Disabled,
            (Observation::Healthy, State::Up) => State::Up,
            (Observation::Healthy, State::Rising(n)) => rising(n + 1),
            (Observation::Healthy, _) => rising(1),
            (Observation::Unhealthy, State::Falling(n)) => falling(n + 1),
            // From an asserted UP, failures are counted.
            (Observation::Unhealthy, State::Up) => falling(1),
            (Observation::Unhealthy, State::Rising(_)) if up_asserted => falling(1),
            // Nothing (or not UP) asserted: DOWN at once (crash safety).
            (Observation::Unhealthy, _) => State::Down,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Observation::{Disabled as X, Healthy as H, Unhealthy as U};
    use proptest::prelude::*;

    fn run(rise: u32, fall: u32, obs: &[Observation]) -> (Fsm, Vec<Option<Advert>>) {
        let t0 = Instant::now();
        let mut fsm = Fsm::new(rise, fall, t0);
        let asserts =
            obs.iter().enumerate().map(|(i, o)| fsm.observe(*o, t0 + Duration::from_secs(i as u64)).assert).collect();
        (fsm, asserts)
    }

    #[test]
    fn rises_after_rise_successes_and_asserts_once() {
        let (fsm, a) = run(3, 3, &[H, H, H, H, H]);
        assert_eq!(a, [None, None, Some(Advert::Up), None, None]);
        assert_eq!(fsm.state(), State::Up);
    }

    #[test]
    fn a_first_failure_is_asserted_at_once() {
        let (_, a) = run(3, 3, &[U]);
        assert_eq!(a, [Some(Advert::Down)]);
        // Also while rising from a fresh start: the route may be stale.
        let (_, a) = run(3, 3, &[H, U]);
        assert_eq!(a, [None, Some(Advert::Down)]);
    }

    #[test]
    fn falls_after_fall_failures_from_up() {
        let (fsm, a) = run(2, 3, &[H, H, U, U, U, U]);
        assert_eq!(a, [None, Some(Advert::Up), None, None, Some(Advert::Down), None]);
        assert_eq!(fsm.state(), State::Down);
    }

    #[test]
    fn wobbling_service_stays_up() {
        let (fsm, a) = run(2, 2, &[H, H, U, H, U, H, U, H, H]);
        assert_eq!(a.iter().flatten().collect::<Vec<_>>(), [&Advert::Up]);
        assert_eq!(fsm.state(), State::Up);
    }

    #[test]
    fn disable_file_wins_and_leaving_it_starts_over() {
        let (_, a) = run(2, 2, &[H, H, X, X, U]);
        assert_eq!(a, [None, Some(Advert::Up), Some(Advert::Disabled), None, Some(Advert::Down)]);
        let (fsm, a) = run(2, 2, &[X, H, H]);
        assert_eq!(a, [Some(Advert::Disabled), None, Some(Advert::Up)]);
        assert_eq!(fsm.state(), State::Up);
    }

    #[test]
    fn rise_and_fall_of_one_are_immediate() {
        let (_, a) = run(1, 1, &[H, U, H]);
        assert_eq!(a, [Some(Advert::Up), Some(Advert::Down), Some(Advert::Up)]);
    }

    #[test]
    fn since_and_delays_follow_the_state() {
        let t0 = Instant::now();
        let timing = Timing {
            interval: Duration::from_secs(5),
            fast_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: std::num::NonZeroU32::MIN,
            fall: std::num::NonZeroU32::MIN,
            reassert: None,
        };
        let mut fsm = Fsm::new(2, 2, t0);
        assert_eq!(fsm.next_delay(&timing), Duration::from_secs(1));
        fsm.observe(H, t0 + Duration::from_secs(1));
        assert_eq!(fsm.since(), t0 + Duration::from_secs(1));
        fsm.observe(H, t0 + Duration::from_secs(2));
        assert_eq!(fsm.state(), State::Up);
        assert_eq!(fsm.since(), t0 + Duration::from_secs(2));
        assert_eq!(fsm.next_delay(&timing), Duration::from_secs(5));
        fsm.observe(H, t0 + Duration::from_secs(7));
        assert_eq!(fsm.since(), t0 + Duration::from_secs(2), "staying UP keeps the entry time");
    }

    fn observation() -> impl Strategy<Value = Observation> {
        prop_oneof![4 => Just(H), 4 => Just(U), 1 => Just(X)]
    }

    proptest! {
        #[test]
        fn never_up_without_rise_successes_since_the_last_failure(
            rise in 1u32..6, fall in 1u32..6, obs in prop::collection::vec(observation(), 0..80)
        ) {
            let t0 = Instant::now();
            let mut fsm = Fsm::new(rise, fall, t0);
            let mut run_of_successes = 0u32;
            for o in obs {
                run_of_successes = if o == H { run_of_successes + 1 } else { 0 };
                let step = fsm.observe(o, t0);
                if step.assert == Some(Advert::Up) {
                    prop_assert!(run_of_successes >= rise);
                }
                if step.to == State::Up {
                    prop_assert!(run_of_successes >= rise || step.from == State::Up);
                }
            }
        }

        #[test]
        fn never_down_from_up_without_fall_failures(
            rise in 1u32..6, fall in 1u32..6, obs in prop::collection::vec(observation(), 0..80)
        ) {
            let t0 = Instant::now();
            let mut fsm = Fsm::new(rise, fall, t0);
            let mut run_of_failures = 0u32;
            for o in obs {
                run_of_failures = if o == U { run_of_failures + 1 } else { 0 };
                let before = fsm.asserted();
                let step = fsm.observe(o, t0);
                if before == Some(Advert::Up) && step.assert == Some(Advert::Down) {
                    prop_assert!(run_of_failures >= fall);
                }
            }
        }

        #[test]
        fn a_failure_before_any_up_is_asserted_at_once(
            rise in 1u32..6, fall in 1u32..6, prefix in prop::collection::vec(observation(), 0..10)
        ) {
            let t0 = Instant::now();
            let mut fsm = Fsm::new(rise, fall, t0);
            for o in prefix {
                fsm.observe(o, t0);
            }
            if fsm.asserted() != Some(Advert::Up) {
                fsm.observe(U, t0);
                prop_assert_eq!(fsm.asserted(), Some(Advert::Down));
            }
        }

        #[test]
        fn asserts_only_on_change(obs in prop::collection::vec(observation(), 0..80)) {
            let t0 = Instant::now();
            let mut fsm = Fsm::new(2, 2, t0);
            for o in obs {
                let before = fsm.asserted();
                let step = fsm.observe(o, t0);
                if let Some(a) = step.assert {
                    prop_assert_ne!(Some(a), before);
                }
            }
        }
    }
}
