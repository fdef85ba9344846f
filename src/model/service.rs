//! The validated description of one service: its prefixes, its checks, its
//! timing and what to announce in each state.
//!
//! Built only by [`crate::model::validate`], from the raw form that both the
//! command line and the JSON config are translated into; runtime code only
//! ever sees this type, never raw input.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use crate::core::dampening::Dampening;
use crate::core::fsm::{Advert, Require};
use crate::model::bgp::{AsPath, Community, ExtCommunity, LargeCommunity, NextHop, Origin, Prefix};
use crate::model::fleet::ServiceGuard;
use crate::probe::Check;

/// BGP path attributes of an announcement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// MULTI_EXIT_DISC of the first prefix; later prefixes add
    /// [`Service::med_increase`] each.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_preference: Option<u32>,
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH.
    pub as_path: Option<AsPath>,
    /// Standard communities.
    pub communities: Vec<Community>,
    /// Extended communities.
    pub extended_communities: Vec<ExtCommunity>,
    /// Large communities.
    pub large_communities: Vec<LargeCommunity>,
}

/// What a state asks of the routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Withdraw every prefix.
    Withdraw,
    /// Announce every prefix with these attributes.
    Announce(Attributes),
}

/// What a failed check means for its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OnFail {
    /// The check is down (the default).
    Down,
    /// The check is only degraded: the service stays announced with the
    /// degraded attributes.
    Degrade,
}

/// One check of a service, with its own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceCheck {
    /// The probe.
    pub check: Check,
    /// Its timeout, when not the service's.
    pub timeout: Option<Duration>,
    /// What its failure means.
    pub on_fail: OnFail,
    /// Its rise threshold, when not the service's.
    pub rise: Option<NonZeroU32>,
    /// Its fall threshold, when not the service's.
    pub fall: Option<NonZeroU32>,
}

impl ServiceCheck {
    /// A check with the service's timeout whose failure means down.
    pub fn plain(check: Check) -> Self {
        ServiceCheck { check, timeout: None, on_fail: OnFail::Down, rise: None, fall: None }
    }
}

/// Probe timing and hysteresis thresholds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Time between probes in a stable state (UP, DOWN, DISABLED).
    pub interval: Duration,
    /// Time between probes while RISING or FALLING.
    pub fast_interval: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
    /// Consecutive successes needed to go UP.
    pub rise: NonZeroU32,
    /// Consecutive failures needed to go DOWN from UP.
    pub fall: NonZeroU32,
    /// How often the current state is written again (ExaBGP deduplicates
    /// identical announcements, so peers see nothing); `None` never.
    pub reassert: Option<Duration>,
}

/// One service: a set of prefixes announced while its checks pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Name used in logs.
    pub name: String,
    /// The prefixes, in metric order. Never empty.
    pub prefixes: Vec<Prefix>,
    /// Next hop for IPv4 prefixes (and IPv6 ones when `next_hop6` is unset).
    pub next_hop: NextHop,
    /// Next hop for IPv6 prefixes.
    pub next_hop6: Option<NextHop>,
    /// Neighbor selector; empty means every neighbor that lists the process.
    pub neighbors: Vec<IpAddr>,
    /// ADD-PATH path identifier.
    pub path_id: Option<u32>,
    /// Added to the MED for each further prefix (100, 101, 102…); negative
    /// lowers it (the bundled healthcheck's `--increase -1`), see [`Service::med`].
    pub med_increase: i64,
    /// Attributes while UP.
    pub up: Attributes,
    /// Attributes while DEGRADED (a check returned a Nagios WARNING, or a
    /// check marked "degrade" failed).
    pub degraded: Attributes,
    /// What to do while DOWN.
    pub down: Action,
    /// What to do while DISABLED (maintenance file present).
    pub disabled: Action,
    /// The checks. An empty list means always healthy.
    pub checks: Vec<ServiceCheck>,
    /// How the checks' levels combine.
    pub require: Require,
    /// Maintenance files: while any exists the service is DISABLED and
    /// checks are not run.
    pub disable_files: Vec<PathBuf>,
    /// A covering prefix the operator announces elsewhere, which silences
    /// the lint about prefixes too long to be accepted on their own.
    pub covering: Option<Prefix>,
    /// Timing and thresholds.
    pub timing: Timing,
    /// How an operator's drain looks.
    pub drain: DrainPolicy,
    /// Flap dampening, when on.
    pub dampening: Option<Dampening>,
    /// The fleet guard: a health withdraw first asks the other sites
    /// ([`crate::engine::core`]); `None`: decided per host.
    pub guard: Option<ServiceGuard>,
    /// Event sources that start a probe round at once (issue 13).
    pub watch: crate::model::watch::Watch,
}

/// How a drain is staged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainPolicy {
    /// Attributes announced first (the UP attributes plus the
    /// GRACEFUL_SHUTDOWN community 65535:0 by default).
    pub attributes: Attributes,
    /// How long they are announced before the withdraw.
    pub stage: Duration,
    /// On SIGTERM, drain (stage, then withdraw) instead of withdrawing at
    /// once; exiting then takes up to `stage`.
    pub on_shutdown: bool,
}

impl DrainPolicy {
    /// The default drain: `up` plus GRACEFUL_SHUTDOWN (RFC 8326), for 30 s.
    pub fn graceful(up: &Attributes) -> Self {
        let mut attributes = up.clone();
        if !attributes.communities.contains(&Community::GRACEFUL_SHUTDOWN) {
            attributes.communities.push(Community::GRACEFUL_SHUTDOWN);
        }
        DrainPolicy { attributes, stage: Duration::from_secs(30), on_shutdown: false }
    }
}

impl Timing {
    /// The delay before the next probe: fast while a state is settling.
    pub fn next_delay(&self, settling: bool) -> Duration {
        if settling { self.fast_interval } else { self.interval }
    }
}

impl Attributes {
    fn compact(&mut self) {
        self.communities.shrink_to_fit();
        self.extended_communities.shrink_to_fit();
        self.large_communities.shrink_to_fit();
        if let Some(p) = &mut self.as_path {
            p.0.shrink_to_fit();
        }
    }
}

impl Service {
    /// The service with every list at its exact size: lists grown one item
    /// at a time keep room for four, which a process holding 10 000
    /// services for its whole life should not pay for.
    pub fn compact(mut self) -> Self {
        self.prefixes.shrink_to_fit();
        self.neighbors.shrink_to_fit();
        self.checks.shrink_to_fit();
        self.disable_files.shrink_to_fit();
        self.watch.listen.shrink_to_fit();
        for a in [&mut self.up, &mut self.degraded, &mut self.drain.attributes] {
            a.compact();
        }
        for action in [&mut self.down, &mut self.disabled] {
            if let Action::Announce(a) = action {
                a.compact();
            }
        }
        self
    }

    /// The MED of prefix number `index` (from 0) when the first one gets
    /// `base`: `base + index × med_increase`, as the bundled healthcheck
    /// computes it, held within the MED's range (0 to 2³²−1) where the
    /// healthcheck would send a value ExaBGP refuses.
    pub fn med(&self, base: u32, index: usize) -> u32 {
        let index = i128::try_from(index).unwrap_or(i128::MAX);
        let med = i128::from(base).saturating_add(index.saturating_mul(i128::from(self.med_increase)));
        u32::try_from(med.clamp(0, i128::from(u32::MAX))).unwrap_or(u32::MAX)
    }

    /// The next hop to use for a prefix.
    pub fn next_hop_for(&self, prefix: &Prefix) -> NextHop {
        match (prefix.is_ipv6(), self.next_hop6) {
            (true, Some(nh)) => nh,
            _ => self.next_hop,
        }
    }

    /// Each check's `(rise, fall)`, its own or the service's.
    pub fn thresholds(&self) -> Vec<(u32, u32)> {
        let t = &self.timing;
        self.checks.iter().map(|c| (c.rise.unwrap_or(t.rise).get(), c.fall.unwrap_or(t.fall).get())).collect()
    }

    /// What an asserted state asks of the routes.
    pub fn action(&self, advert: Advert) -> Action {
        match advert {
            Advert::Up => Action::Announce(self.up.clone()),
            Advert::Degraded => Action::Announce(self.degraded.clone()),
            Advert::Draining => Action::Announce(self.drain.attributes.clone()),
            Advert::Suppressed | Advert::Drained => Action::Withdraw,
            Advert::Down => self.down.clone(),
            Advert::Disabled => self.disabled.clone(),
        }
    }
}
