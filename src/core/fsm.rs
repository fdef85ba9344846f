//! Rise/fall hysteresis: pure state machines fed with probe results, with
//! time passed in, so they are tested without sleeping.
//!
//! Two layers:
//! - [`CheckFsm`]: one per check. It turns a stream of per-probe
//!   [`Level`]s (healthy, degraded, down) into a stable level. Moving to a
//!   better level takes `rise` consecutive better results, and lands on the
//!   worst level seen in that run. Moving to a worse level takes `fall`
//!   consecutive worse results, and lands on the best level seen in that run.
//!   A result equal to the current level resets the count. Healthy ↔
//!   degraded and degraded ↔ down go through the same hysteresis.
//! - [`ServiceFsm`]: combines the stable levels of a service's checks
//!   ([`Require`]: all, any, or at least N) into the [`Advert`] the routes
//!   should show. The maintenance file forces DISABLED at once. Lines are
//!   written only when the asserted advert changes.
//!
//! On top of the checks, [`ServiceFsm`] applies an operator's staged drain
//! (drain attributes for a while, then a withdraw) and flap dampening
//! ([`crate::core::dampening`]): a suppressed service is held withdrawn.
//!
//! **Crash safety.** ExaBGP keeps the routes of a process that died, so a
//! fresh exaprobe cannot know what is announced. A check with no stable level
//! yet (INIT, or RISING from INIT) goes DOWN on its first down result, at
//! once, instead of after `fall` results. Announcing still needs `rise`
//! successes. When the maintenance file goes away, every check starts over
//! from INIT.

use std::fmt;
use std::time::{Duration, Instant};

use crate::core::dampening::{Dampening, Damper};

/// How healthy something is, worst first (so `Ord` compares health).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Not working.
    Down,
    /// Working, worse than it should.
    Degraded,
    /// Working.
    Healthy,
}

impl From<crate::probe::Health> for Level {
    fn from(h: crate::probe::Health) -> Level {
        match h {
            crate::probe::Health::Healthy => Level::Healthy,
            crate::probe::Health::Degraded => Level::Degraded,
            crate::probe::Health::Down => Level::Down,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Down => "DOWN",
            Level::Degraded => "DEGRADED",
            Level::Healthy => "UP",
        })
    }
}

/// The state of a check, for logs and status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// No stable level, no result counted yet.
    Init,
    /// Counting results better than the current level (or than nothing).
    Rising(u32),
    /// Counting results worse than the current level.
    Falling(u32),
    /// Stable at a level.
    Steady(Level),
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Init => f.write_str("INIT"),
            State::Rising(n) => write!(f, "RISING({n})"),
            State::Falling(n) => write!(f, "FALLING({n})"),
            State::Steady(l) => write!(f, "{l}"),
        }
    }
}

/// The hysteresis of one check.
#[derive(Clone, Debug)]
pub struct CheckFsm {
    rise: u32,
    fall: u32,
    level: Option<Level>,
    /// Length of the current run of results better (rising) or worse
    /// (falling) than `level`; 0 when there is none.
    run: u32,
    rising: bool,
    /// Worst level in a rising run, best level in a falling run.
    run_bound: Level,
    since: Instant,
}

impl CheckFsm {
    /// A check in INIT. `rise` and `fall` below 1 are taken as 1.
    pub fn new(rise: u32, fall: u32, now: Instant) -> Self {
        CheckFsm {
            rise: rise.max(1),
            fall: fall.max(1),
            level: None,
            run: 0,
            rising: true,
            run_bound: Level::Healthy,
            since: now,
        }
    }

    /// The stable level, `None` before the first.
    pub fn level(&self) -> Option<Level> {
        self.level
    }

    /// The state, for logs.
    pub fn state(&self) -> State {
        match (self.run, self.level) {
            (0, None) => State::Init,
            (0, Some(l)) => State::Steady(l),
            (n, _) if self.rising => State::Rising(n),
            (n, _) => State::Falling(n),
        }
    }

    /// When the stable level last changed (or the machine started).
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Whether the next probe should come soon: a run is being counted or
    /// nothing is known yet.
    pub fn is_settling(&self) -> bool {
        self.run > 0 || self.level.is_none()
    }

    /// `rise` and `fall`, for logs.
    pub fn thresholds(&self) -> (u32, u32) {
        (self.rise, self.fall)
    }

    /// Feeds one probe result known to follow the loss of what the check
    /// depends on (a watched process exited, a watched listener closed): a
    /// failure is believed at once, skipping the rest of `fall`. Anything
    /// better counts as usual, so recovery still takes `rise`.
    pub fn observe_definitive(&mut self, obs: Level, now: Instant) -> Option<Level> {
        if obs != Level::Down || self.level == Some(Level::Down) {
            return self.observe(obs, now);
        }
        self.level = Some(Level::Down);
        self.run = 0;
        self.since = now;
        Some(Level::Down)
    }

    /// Feeds one probe result; returns the new stable level when it changed.
    pub fn observe(&mut self, obs: Level, now: Instant) -> Option<Level> {
        let new = match self.level {
            // Crash safety: nothing is known, so a failure is believed at once.
            None if obs == Level::Down => Some(Level::Down),
            Some(cur) if obs == cur => {
                self.run = 0;
                None
            }
            cur => {
                let rising = cur.is_none_or(|c| obs > c);
                if self.run == 0 || rising != self.rising {
                    self.run = 0;
                    self.rising = rising;
                    self.run_bound = obs;
                }
                self.run += 1;
                self.run_bound = if rising { self.run_bound.min(obs) } else { self.run_bound.max(obs) };
                let needed = if rising { self.rise } else { self.fall };
                (self.run >= needed).then_some(self.run_bound)
            }
        };
        if let Some(level) = new {
            self.level = Some(level);
            self.run = 0;
            self.since = now;
        }
        new
    }
}

/// How the levels of several checks combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Require {
    /// Every check must be healthy (the default).
    All,
    /// One healthy check is enough.
    Any,
    /// At least this many checks must be healthy.
    AtLeast(usize),
}

impl Require {
    /// The service level for these check levels; `None` while checks without
    /// a level could still change the answer.
    pub fn combine(self, levels: &[Option<Level>]) -> Option<Level> {
        let n = |l: Level| levels.iter().filter(|x| **x == Some(l)).count();
        let (healthy, degraded, down) = (n(Level::Healthy), n(Level::Degraded), n(Level::Down));
        let unknown = levels.len() - healthy - degraded - down;
        let need = match self {
            Require::All => levels.len(),
            Require::Any => 1,
            Require::AtLeast(k) => k,
        }
        .clamp(1, levels.len().max(1));
        if levels.is_empty() {
            return Some(Level::Healthy);
        }
        if healthy >= need {
            Some(Level::Healthy)
        } else if healthy + degraded + unknown < need {
            Some(Level::Down)
        } else if unknown > 0 {
            None
        } else {
            Some(Level::Degraded)
        }
    }
}

impl fmt::Display for Require {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Require::All => f.write_str("all"),
            Require::Any => f.write_str("any"),
            Require::AtLeast(n) => write!(f, "{n}"),
        }
    }
}

/// What the routes are asked to look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Advert {
    /// Announced with the UP attributes.
    Up,
    /// Announced with the DEGRADED attributes.
    Degraded,
    /// Withdrawn, or announced with the DOWN attributes.
    Down,
    /// Withdrawn, or announced with the DISABLED attributes.
    Disabled,
    /// Held down by flap dampening: withdrawn.
    Suppressed,
    /// First stage of a drain: announced with the drain attributes (the
    /// GRACEFUL_SHUTDOWN community by default), so traffic leaves gently.
    Draining,
    /// Second stage of a drain: withdrawn.
    Drained,
}

impl From<Level> for Advert {
    fn from(l: Level) -> Advert {
        match l {
            Level::Healthy => Advert::Up,
            Level::Degraded => Advert::Degraded,
            Level::Down => Advert::Down,
        }
    }
}

impl Advert {
    /// Upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            Advert::Up => "UP",
            Advert::Degraded => "DEGRADED",
            Advert::Down => "DOWN",
            Advert::Disabled => "DISABLED",
            Advert::Suppressed => "SUPPRESSED",
            Advert::Draining => "DRAINING",
            Advert::Drained => "DRAINED",
        }
    }
}

impl fmt::Display for Advert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An operator's drain of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drain {
    /// When it started.
    pub since: Instant,
    /// How long the drain attributes are announced before the withdraw.
    pub stage: Duration,
    /// When it ends by itself, if ever.
    pub until: Option<Instant>,
}

/// The hysteresis of a whole service, plus what overrides it: the
/// maintenance file, an operator's drain, and flap dampening.
///
/// Precedence, strongest first: drain, maintenance file, suppression, the
/// checks' combined level.
#[derive(Clone, Debug)]
pub struct ServiceFsm {
    checks: Vec<CheckFsm>,
    require: Require,
    disabled: bool,
    /// What the checks ask for.
    wanted: Option<Advert>,
    asserted: Option<Advert>,
    since: Instant,
    damper: Option<Damper>,
    drain: Option<Drain>,
}

impl ServiceFsm {
    /// A service whose checks have these `(rise, fall)` thresholds, all in
    /// INIT.
    pub fn new(thresholds: &[(u32, u32)], require: Require, now: Instant) -> Self {
        ServiceFsm {
            checks: thresholds.iter().map(|&(rise, fall)| CheckFsm::new(rise, fall, now)).collect(),
            require,
            disabled: false,
            wanted: None,
            asserted: None,
            since: now,
            damper: None,
            drain: None,
        }
    }

    /// Turns on flap dampening.
    pub fn with_dampening(mut self, cfg: Option<Dampening>, now: Instant) -> Self {
        self.damper = cfg.map(|c| Damper::new(c, now));
        self
    }

    /// The per-check machines.
    pub fn checks(&self) -> &[CheckFsm] {
        &self.checks
    }

    /// The advert last asserted, `None` before the first.
    pub fn asserted(&self) -> Option<Advert> {
        self.asserted
    }

    /// What the checks (and the maintenance file) ask for, before drain and
    /// dampening.
    pub fn wanted(&self) -> Option<Advert> {
        self.wanted
    }

    /// When the asserted advert last changed.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// The flap penalty at `now` (0 without dampening).
    pub fn penalty(&self, now: Instant) -> f64 {
        self.damper.as_ref().map_or(0.0, |d| d.penalty(now))
    }

    /// Whether dampening holds the service down.
    pub fn is_suppressed(&self) -> bool {
        self.damper.as_ref().is_some_and(Damper::is_suppressed)
    }

    /// The drain in force, if any.
    pub fn drain(&self) -> Option<Drain> {
        self.drain
    }

    /// Whether probes should come at the fast interval.
    pub fn is_settling(&self) -> bool {
        !self.disabled && (self.wanted.is_none() || self.checks.iter().any(CheckFsm::is_settling))
    }

    /// Feeds the results of one probe round (one level per check, in order).
    /// Returns the advert to assert now, when it changed.
    pub fn observe(&mut self, results: &[Level], now: Instant) -> Option<Advert> {
        self.observe_round(results, false, now)
    }

    /// [`Self::observe`] for a round started by (or run right after) a
    /// watch event that saw the service's process or listener go: a failed
    /// check is DOWN at once ([`CheckFsm::observe_definitive`]). Dampening
    /// counts the flap as usual.
    pub fn observe_after_event(&mut self, results: &[Level], now: Instant) -> Option<Advert> {
        self.observe_round(results, true, now)
    }

    fn observe_round(&mut self, results: &[Level], definitive: bool, now: Instant) -> Option<Advert> {
        if self.disabled {
            // The maintenance file just went away: start over.
            self.disabled = false;
            for c in &mut self.checks {
                *c = CheckFsm::new(c.rise, c.fall, now);
            }
        }
        for (c, r) in self.checks.iter_mut().zip(results) {
            if definitive {
                c.observe_definitive(*r, now);
            } else {
                c.observe(*r, now);
            }
        }
        let levels: Vec<Option<Level>> = self.checks.iter().map(CheckFsm::level).collect();
        if let Some(want) = self.require.combine(&levels).map(Advert::from) {
            if let Some(d) = &mut self.damper {
                match (self.wanted, want) {
                    (Some(Advert::Up | Advert::Degraded), Advert::Down) => d.flap(now),
                    (Some(Advert::Up), Advert::Degraded) | (Some(Advert::Degraded), Advert::Up) => {
                        d.attribute_change(now);
                    }
                    _ => {}
                }
            }
            self.wanted = Some(want);
        }
        self.settle(now)
    }

    /// The maintenance file exists: DISABLED, at once.
    pub fn observe_disabled(&mut self, now: Instant) -> Option<Advert> {
        self.disabled = true;
        self.wanted = Some(Advert::Disabled);
        self.settle(now)
    }

    /// Starts a drain; returns the advert to assert now, if it changed.
    pub fn start_drain(&mut self, drain: Drain, now: Instant) -> Option<Advert> {
        self.drain = Some(drain);
        self.settle(now)
    }

    /// Ends a drain; returns the advert to assert now, if it changed.
    pub fn end_drain(&mut self, now: Instant) -> Option<Advert> {
        self.drain = None;
        self.settle(now)
    }

    /// Lets time pass: drain stages and expiry, end of a suppression.
    pub fn tick(&mut self, now: Instant) -> Option<Advert> {
        self.settle(now)
    }

    /// When [`Self::tick`] has something to do, if nothing else happens.
    pub fn next_timer(&self) -> Option<Instant> {
        let drain = self.drain.map(|d| {
            let stage_end = d.since + d.stage;
            match d.until {
                Some(u) if self.asserted == Some(Advert::Drained) || u < stage_end => u,
                _ if self.asserted == Some(Advert::Drained) => return None,
                _ => stage_end,
            }
            .into()
        });
        [drain.flatten(), self.damper.as_ref().and_then(Damper::release_at)].into_iter().flatten().min()
    }

    fn effective(&mut self, now: Instant) -> Option<Advert> {
        if let Some(d) = self.drain
            && d.until.is_some_and(|u| now >= u)
        {
            self.drain = None;
        }
        let suppressed = self.damper.as_mut().is_some_and(|d| d.update(now));
        if let Some(d) = self.drain {
            // Only an announced service has traffic to move away gently; a
            // down (or unknown) one is withdrawn at once.
            let announced = matches!(self.wanted, Some(Advert::Up | Advert::Degraded)) && !suppressed;
            return Some(if announced && now < d.since + d.stage { Advert::Draining } else { Advert::Drained });
        }
        match self.wanted {
            Some(Advert::Disabled) => Some(Advert::Disabled),
            Some(_) if suppressed => Some(Advert::Suppressed),
            w => w,
        }
    }

    fn settle(&mut self, now: Instant) -> Option<Advert> {
        let new = self.effective(now).filter(|w| Some(*w) != self.asserted);
        if new.is_some() {
            self.asserted = new;
            self.since = now;
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Level::{Degraded as G, Down as D, Healthy as H};
    use proptest::prelude::*;

    fn levels(rise: u32, fall: u32, obs: &[Level]) -> (CheckFsm, Vec<Option<Level>>) {
        let t0 = Instant::now();
        let mut c = CheckFsm::new(rise, fall, t0);
        let changes = obs.iter().map(|o| c.observe(*o, t0)).collect();
        (c, changes)
    }

    #[test]
    fn rises_after_rise_successes() {
        let (c, ch) = levels(3, 3, &[H, H, H, H]);
        assert_eq!(ch, [None, None, Some(H), None]);
        assert_eq!(c.state(), State::Steady(H));
    }

    #[test]
    fn a_first_failure_is_believed_at_once() {
        assert_eq!(levels(3, 3, &[D]).1, [Some(D)]);
        assert_eq!(levels(3, 3, &[H, H, D]).1, [None, None, Some(D)]);
    }

    #[test]
    fn falls_after_fall_failures_and_wobbles_stay_up() {
        assert_eq!(levels(2, 3, &[H, H, D, D, D]).1, [None, Some(H), None, None, Some(D)]);
        let (c, ch) = levels(2, 2, &[H, H, D, H, D, H, D, H]);
        assert_eq!(ch.iter().flatten().collect::<Vec<_>>(), [&H]);
        assert_eq!(c.level(), Some(H));
    }

    #[test]
    fn degraded_moves_through_the_same_hysteresis() {
        // UP, then two degraded results with fall 2: DEGRADED.
        assert_eq!(levels(1, 2, &[H, G, G]).1, [Some(H), None, Some(G)]);
        // A falling run of mixed results lands on its best level.
        assert_eq!(levels(1, 2, &[H, D, G]).1, [Some(H), None, Some(G)]);
        // A rising run from DOWN lands on its worst level.
        assert_eq!(levels(2, 1, &[D, G, H, H, H]).1, [Some(D), None, Some(G), None, Some(H)]);
    }

    #[test]
    fn states_for_logs() {
        let t0 = Instant::now();
        let mut c = CheckFsm::new(3, 2, t0);
        assert_eq!(c.state().to_string(), "INIT");
        c.observe(H, t0);
        assert_eq!(c.state().to_string(), "RISING(1)");
        c.observe(H, t0);
        c.observe(H, t0);
        assert_eq!(c.state().to_string(), "UP");
        c.observe(D, t0);
        assert_eq!(c.state().to_string(), "FALLING(1)");
    }

    #[test]
    fn combinations() {
        let all = Require::All;
        assert_eq!(all.combine(&[Some(H), Some(H)]), Some(H));
        assert_eq!(all.combine(&[Some(H), Some(G)]), Some(G));
        assert_eq!(all.combine(&[Some(H), None]), None);
        assert_eq!(all.combine(&[None, Some(D)]), Some(D));
        assert_eq!(Require::Any.combine(&[Some(D), Some(H)]), Some(H));
        assert_eq!(Require::Any.combine(&[Some(D), None]), None);
        assert_eq!(Require::Any.combine(&[Some(D), Some(G)]), Some(G));
        assert_eq!(Require::AtLeast(2).combine(&[Some(H), Some(D), Some(H)]), Some(H));
        assert_eq!(Require::AtLeast(2).combine(&[Some(H), Some(D), Some(D)]), Some(D));
        assert_eq!(Require::AtLeast(2).combine(&[Some(H), Some(G), Some(D)]), Some(G));
        assert_eq!(all.combine(&[]), Some(H));
    }

    #[test]
    fn service_disable_and_restart_from_init() {
        let t0 = Instant::now();
        let mut s = ServiceFsm::new(&[(2, 2)], Require::All, t0);
        assert_eq!(s.observe(&[H], t0), None);
        assert_eq!(s.observe(&[H], t0), Some(Advert::Up));
        assert_eq!(s.observe_disabled(t0), Some(Advert::Disabled));
        assert!(!s.is_settling());
        assert_eq!(s.observe_disabled(t0), None);
        // Back from maintenance, a failure is believed at once.
        assert_eq!(s.observe(&[D], t0), Some(Advert::Down));
        assert_eq!(s.observe(&[H], t0), None);
        assert_eq!(s.observe(&[H], t0), Some(Advert::Up));
    }

    #[test]
    fn each_check_has_its_own_counters() {
        let t0 = Instant::now();
        let mut s = ServiceFsm::new(&[(1, 2); 2], Require::All, t0);
        assert_eq!(s.observe(&[H, H], t0), Some(Advert::Up));
        // Alternating failures on different checks never reach fall on either.
        for _ in 0..5 {
            assert_eq!(s.observe(&[D, H], t0), None);
            assert_eq!(s.observe(&[H, D], t0), None);
        }
        assert_eq!(s.observe(&[D, H], t0), None);
        assert_eq!(s.observe(&[D, H], t0), Some(Advert::Down));
    }

    #[test]
    fn a_drain_announces_drain_attributes_then_withdraws_then_expires() {
        let t0 = Instant::now();
        let s3 = Duration::from_secs(3);
        let mut s = ServiceFsm::new(&[(1, 1)], Require::All, t0);
        assert_eq!(s.observe(&[H], t0), Some(Advert::Up));
        let drain = Drain { since: t0, stage: s3, until: Some(t0 + Duration::from_secs(10)) };
        assert_eq!(s.start_drain(drain, t0), Some(Advert::Draining));
        assert_eq!(s.next_timer(), Some(t0 + s3));
        assert_eq!(s.observe(&[H], t0 + Duration::from_secs(1)), None, "healthy results do not end a drain");
        assert_eq!(s.tick(t0 + s3), Some(Advert::Drained));
        assert_eq!(s.next_timer(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(s.observe(&[H], t0 + Duration::from_secs(4)), None);
        assert_eq!(s.tick(t0 + Duration::from_secs(10)), Some(Advert::Up));
        assert_eq!(s.drain(), None);
        assert_eq!(s.next_timer(), None);
    }

    #[test]
    fn draining_a_down_service_withdraws_without_announcing() {
        let t0 = Instant::now();
        let mut s = ServiceFsm::new(&[(1, 1)], Require::All, t0);
        assert_eq!(s.observe(&[D], t0), Some(Advert::Down));
        let drain = Drain { since: t0, stage: Duration::from_secs(3), until: None };
        assert_eq!(s.start_drain(drain, t0), Some(Advert::Drained));
        // A service that fails while draining leaves at once too.
        let mut s = ServiceFsm::new(&[(1, 1)], Require::All, t0);
        s.observe(&[H], t0);
        assert_eq!(s.start_drain(drain, t0), Some(Advert::Draining));
        assert_eq!(s.observe(&[D], t0 + Duration::from_secs(1)), Some(Advert::Drained));
    }

    #[test]
    fn dampening_holds_a_flapping_service_down() {
        let t0 = Instant::now();
        let cfg = Dampening {
            half_life: Duration::from_secs(10),
            penalty: 1000.0,
            suppress: 2000.0,
            reuse: 750.0,
            max_suppress: Duration::from_secs(60),
        };
        let mut s = ServiceFsm::new(&[(1, 1)], Require::All, t0).with_dampening(Some(cfg), t0);
        let mut asserted = Vec::new();
        for i in 0..10u64 {
            let level = if i % 2 == 0 { H } else { D };
            asserted.extend(s.observe(&[level], t0 + Duration::from_secs(i)));
        }
        assert_eq!(asserted, [Advert::Up, Advert::Down, Advert::Up, Advert::Down, Advert::Up, Advert::Suppressed]);
        assert!(s.is_suppressed());
        let release = s.next_timer().unwrap();
        assert_eq!(s.tick(release), Some(Advert::Down), "released into what the checks say");
    }

    fn level() -> impl Strategy<Value = Level> {
        prop_oneof![Just(H), Just(G), Just(D)]
    }

    proptest! {
        #[test]
        fn never_up_without_rise_successes_since_the_last_non_success(
            rise in 1u32..6, fall in 1u32..6, obs in prop::collection::vec(level(), 0..100)
        ) {
            let t0 = Instant::now();
            let mut c = CheckFsm::new(rise, fall, t0);
            let mut run = 0;
            for o in obs {
                run = if o == H { run + 1 } else { 0 };
                if c.observe(o, t0) == Some(H) {
                    prop_assert!(run >= rise);
                }
            }
        }

        #[test]
        fn never_down_from_up_without_fall_failures(
            rise in 1u32..6, fall in 1u32..6, obs in prop::collection::vec(level(), 0..100)
        ) {
            let t0 = Instant::now();
            let mut c = CheckFsm::new(rise, fall, t0);
            let mut run = 0;
            for o in obs {
                run = if o == D { run + 1 } else { 0 };
                let before = c.level();
                if c.observe(o, t0) == Some(D) && before.is_some() {
                    prop_assert!(run >= fall, "went down after {run} failures from {before:?}");
                }
            }
        }

        #[test]
        fn a_down_result_before_any_level_is_believed_at_once(
            rise in 1u32..6, fall in 1u32..6, prefix in prop::collection::vec(level(), 0..10)
        ) {
            let t0 = Instant::now();
            let mut c = CheckFsm::new(rise, fall, t0);
            for o in prefix {
                c.observe(o, t0);
            }
            if c.level().is_none() {
                prop_assert_eq!(c.observe(D, t0), Some(D));
            }
        }

        #[test]
        fn service_asserts_only_on_change(
            obs in prop::collection::vec((level(), level(), any::<bool>()), 0..100)
        ) {
            let t0 = Instant::now();
            let mut s = ServiceFsm::new(&[(2, 2); 2], Require::All, t0);
            for (a, b, disabled) in obs {
                let before = s.asserted();
                let new = if disabled { s.observe_disabled(t0) } else { s.observe(&[a, b], t0) };
                if let Some(n) = new {
                    prop_assert_ne!(Some(n), before);
                }
            }
        }
    }
}
