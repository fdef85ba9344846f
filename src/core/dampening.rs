//! Flap dampening after RFC 2439, for a whole service: each UP→DOWN flap
//! adds a penalty (and each UP↔DEGRADED change half of it) that decays
//! exponentially with a half-life. Above the
//! suppress threshold the service is held down (withdrawn) until the penalty
//! decays below the reuse threshold, and never longer than `max_suppress`.
//! Pure: time is passed in.
//!
//! As in RFC 2439 the penalty is capped at the value that decays to `reuse`
//! in `max_suppress`, so even a service that keeps flapping while suppressed
//! is released in time; if it still flaps after that, the next flap
//! suppresses it again.

use std::time::{Duration, Instant};

/// Dampening parameters (validated: all positive, reuse < suppress).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dampening {
    /// Time for the penalty to halve.
    pub half_life: Duration,
    /// Penalty added per flap.
    pub penalty: f64,
    /// Suppress when the penalty goes above this.
    pub suppress: f64,
    /// Release when the penalty decays below this.
    pub reuse: f64,
    /// Longest suppression.
    pub max_suppress: Duration,
}

impl Eq for Dampening {}

impl Dampening {
    /// Values for a config file: a service must flap three times in quick
    /// succession to be suppressed, and is released within an hour.
    pub const RECOMMENDED: Dampening = Dampening {
        half_life: Duration::from_secs(15 * 60),
        penalty: 1000.0,
        suppress: 2500.0,
        reuse: 750.0,
        max_suppress: Duration::from_secs(3600),
    };

    /// Checks the invariants; the message names the field.
    pub fn validate(self) -> Result<Dampening, String> {
        if self.half_life.is_zero() || self.max_suppress.is_zero() {
            return Err("half_life and max_suppress must be more than 0".into());
        }
        if !(self.penalty > 0.0 && self.reuse > 0.0 && self.suppress.is_finite()) {
            return Err("penalty, suppress and reuse must be more than 0".into());
        }
        if self.reuse >= self.suppress {
            return Err(format!("reuse ({}) must be below suppress ({})", self.reuse, self.suppress));
        }
        Ok(self)
    }

    fn ceiling(&self) -> f64 {
        self.reuse * 2f64.powf(self.max_suppress.as_secs_f64() / self.half_life.as_secs_f64())
    }
}

/// The penalty state of one service.
#[derive(Clone, Debug)]
pub struct Damper {
    cfg: Dampening,
    value: f64,
    at: Instant,
    suppressed_since: Option<Instant>,
}

impl Damper {
    /// A damper with no penalty.
    pub fn new(cfg: Dampening, now: Instant) -> Self {
        Damper { cfg, value: 0.0, at: now, suppressed_since: None }
    }

    /// The penalty at `now` (never negative).
    pub fn penalty(&self, now: Instant) -> f64 {
        let age = now.saturating_duration_since(self.at).as_secs_f64();
        self.value * 0.5f64.powf(age / self.cfg.half_life.as_secs_f64())
    }

    /// Records a flap (a withdraw) at `now`.
    pub fn flap(&mut self, now: Instant) {
        self.add(now, self.cfg.penalty);
    }

    /// Records an attribute change of an announced route (UP ↔ DEGRADED) at
    /// `now`: half a flap's penalty, as RFC 2439 charges attribute changes
    /// (500 against 1000 for a withdraw). Each is a BGP UPDATE to every peer,
    /// so a service that wobbles between the two is dampened too.
    pub fn attribute_change(&mut self, now: Instant) {
        self.add(now, self.cfg.penalty / 2.0);
    }

    fn add(&mut self, now: Instant, penalty: f64) {
        self.value = (self.penalty(now) + penalty).min(self.cfg.ceiling());
        self.at = now;
        if self.value > self.cfg.suppress && self.suppressed_since.is_none() {
            self.suppressed_since = Some(now);
        }
    }

    /// Whether the service is suppressed at `now`; ends a suppression whose
    /// time is up.
    pub fn update(&mut self, now: Instant) -> bool {
        if let Some(since) = self.suppressed_since
            && (self.penalty(now) < self.cfg.reuse || now.saturating_duration_since(since) >= self.cfg.max_suppress)
        {
            self.suppressed_since = None;
        }
        self.suppressed_since.is_some()
    }

    /// Whether the service is suppressed (as of the last update).
    pub fn is_suppressed(&self) -> bool {
        self.suppressed_since.is_some()
    }

    /// When a suppression in force ends, if nothing else happens.
    pub fn release_at(&self) -> Option<Instant> {
        let since = self.suppressed_since?;
        let by_max = since + self.cfg.max_suppress;
        let halvings = (self.value / self.cfg.reuse).log2().max(0.0);
        // A hair past the exact crossing, so that `update` then sees it.
        let by_decay = self.at + self.cfg.half_life.mul_f64(halvings) + Duration::from_millis(1);
        Some(by_max.min(by_decay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg() -> Dampening {
        Dampening {
            half_life: Duration::from_secs(10),
            penalty: 1000.0,
            suppress: 2000.0,
            reuse: 750.0,
            max_suppress: Duration::from_secs(60),
        }
    }

    #[test]
    fn decays_by_half_each_half_life() {
        let t0 = Instant::now();
        let mut d = Damper::new(cfg(), t0);
        d.flap(t0);
        assert!((d.penalty(t0 + Duration::from_secs(10)) - 500.0).abs() < 1e-6);
        assert!(!d.is_suppressed());
    }

    #[test]
    fn three_quick_flaps_suppress_until_reuse() {
        let t0 = Instant::now();
        let mut d = Damper::new(cfg(), t0);
        for s in 0..3 {
            d.flap(t0 + Duration::from_secs(s));
        }
        assert!(d.update(t0 + Duration::from_secs(3)));
        let release = d.release_at().unwrap();
        assert!(d.update(release - Duration::from_millis(5)));
        assert!(!d.update(release));
        assert!(d.penalty(release) < 750.0);
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(Dampening { reuse: 3000.0, ..cfg() }.validate().is_err());
        assert!(Dampening { half_life: Duration::ZERO, ..cfg() }.validate().is_err());
        assert!(Dampening::RECOMMENDED.validate().is_ok());
    }

    proptest! {
        #[test]
        fn penalty_never_negative_and_suppression_ends_within_the_maximum(
            flaps in prop::collection::vec(0u64..5_000, 0..60)
        ) {
            let t0 = Instant::now();
            let mut d = Damper::new(cfg(), t0);
            let mut t = t0;
            let mut since: Option<Instant> = None;
            for gap in flaps {
                t += Duration::from_millis(gap);
                let suppressed = d.update(t);
                prop_assert!(d.penalty(t) >= 0.0);
                match (suppressed, since) {
                    (true, None) => since = Some(t),
                    (false, Some(_)) => since = None,
                    _ => {}
                }
                if let Some(s) = since {
                    prop_assert!(t - s <= cfg().max_suppress + Duration::from_secs(5));
                }
                d.flap(t);
                if d.is_suppressed() && since.is_none() {
                    since = Some(t);
                }
                if let Some(r) = d.release_at() {
                    prop_assert!(r <= since.unwrap_or(t) + cfg().max_suppress);
                }
            }
        }

        #[test]
        fn a_steady_service_is_never_suppressed(checks in 1usize..500) {
            let t0 = Instant::now();
            let mut d = Damper::new(cfg(), t0);
            for i in 0..checks {
                prop_assert!(!d.update(t0 + Duration::from_secs(i as u64)));
            }
            prop_assert_eq!(d.penalty(t0 + Duration::from_secs(checks as u64)), 0.0);
        }
    }
}
