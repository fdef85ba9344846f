//! The fleet guard, in the pure core: before a health withdraw (DOWN, or
//! SUPPRESSED by dampening) of a guarded service, the site asks the fleet
//! store whether enough other sites announce; meanwhile, and while the
//! answer is "hold", the route stays announced (with the degraded
//! attributes).
//!
//! ```text
//!   health withdraw ──> ASKING ──Withdraw──> withdrawn
//!      (announced)        │  └──Local / timeout / store lost──> withdrawn (decided locally)
//!                         └──Hold──> HELD ──(probe round, Changed)──> ASKING again
//!   UP/DEGRADED again, SIGTERM, maintenance file, drain: the guard lets go
//! ```
//!
//! Time is passed in; what the fleet client must do comes back as
//! [`FleetCall`]s in the [`Effects`]. The core bounds every question itself
//! (the store's timeout plus [`SLACK`]): a client that never answers delays
//! a withdraw by that much at most, then the local rule applies.
//!
//! An operator's drain asks the same way unless forced, and its control
//! reply waits for the verdict ([`Answer::Later`], answered through
//! [`Effects::replies`]). The maintenance file is never refused: it
//! withdraws at once, and the log says (at warn) when it overrides the
//! guard. SIGTERM withdraws without asking (see [`super::lifecycle`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use super::{Core, Effects};
use crate::core::fsm::{Advert, Drain};
use crate::engine::events::LogEvent;
use crate::fleet::{Entry, Notice, Verdict};
use crate::model::service::Action;
use crate::ops::control::Reply;
use crate::ops::control::proto::{FleetStatus, GuardStatus};
use crate::ops::state::SavedDrain;
use crate::probe::Health;

/// How much longer than the store's timeout the core waits for a verdict
/// before deciding locally: the client answers [`Verdict::Local`] at its
/// timeout; this covers a client that does not.
pub(super) const SLACK: Duration = Duration::from_millis(250);

/// Most control replies waiting for verdicts at once (each is a drain in
/// progress); a drain beyond it is refused rather than queued.
const MAX_WAITING_REPLIES: usize = 64;

/// What the shell must ask of the fleet client, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FleetCall {
    /// [`crate::fleet::Fleet::publish`].
    Publish {
        /// The service.
        service: String,
        /// Its entry now.
        entry: Published,
    },
    /// [`crate::fleet::Fleet::ask_withdraw`].
    Ask {
        /// The service.
        service: String,
        /// The ticket the verdict will carry.
        ticket: u64,
        /// Other sites that must announce.
        min_sites: u32,
        /// The entry the store keeps if the withdraw is granted.
        withdrawn: Published,
    },
}

/// A fleet [`Entry`] whose time is the core's clock; the shell turns it
/// into wall time ([`Published::entry`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The route is announced from this site.
    pub announcing: bool,
    /// Announced only because the guard holds it.
    pub held: bool,
    /// The state as `status` shows it.
    pub state: String,
    /// Since when.
    pub since: Instant,
    /// Why.
    pub reason: String,
}

impl Published {
    /// The entry, `since` turned into wall time from `now` (the core's clock)
    /// and `wall` (the system clock, read at the same moment).
    pub fn entry(&self, now: Instant, wall: SystemTime) -> Entry {
        let ago = now.saturating_duration_since(self.since);
        Entry {
            announcing: self.announcing,
            held: self.held,
            state: self.state.clone(),
            since: wall.checked_sub(ago).unwrap_or(wall),
            reason: self.reason.clone(),
        }
    }
}

/// The answer to a control request: now, or when the fleet store has
/// answered (a drain that asks), through [`Effects::replies`] with this id.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// The reply.
    Now(Reply),
    /// The reply will come with this id.
    Later(u64),
}

/// The store as the core knows it, present when a fleet is configured.
#[derive(Debug)]
pub(super) struct FleetState {
    connected: bool,
    detail: String,
    /// The store's timeout; questions are bounded by it plus [`SLACK`].
    timeout: Duration,
    last_ticket: u64,
    verdicts: Verdicts,
    /// Control replies waiting for drain verdicts, by reply id.
    waiting: HashMap<u64, Waiting>,
    last_reply: u64,
}

/// Verdicts received, for the metrics.
#[derive(Clone, Copy, Debug, Default)]
struct Verdicts {
    withdraw: u64,
    hold: u64,
    local: u64,
    timeout: u64,
}

/// A drain's control reply, waiting for its services' verdicts.
#[derive(Debug, Default)]
struct Waiting {
    left: usize,
    drained: Vec<String>,
    refused: Vec<String>,
    /// Services a reload removed or replaced before their verdict.
    reloaded: Vec<String>,
}

/// How a drain's question ended, for its control reply.
enum DrainEnd {
    Drained,
    /// Refused by the guard: why, with the count.
    Refused(String),
    /// The service was removed or replaced by a reload first.
    Reloaded,
}

/// One service's guard state.
#[derive(Debug, Default)]
pub(super) struct GuardRt {
    /// The outstanding health question.
    asking: Option<Ask>,
    /// The outstanding drain or maintenance question.
    other: Option<Ask>,
    /// Held (since when): the store said hold.
    held: Option<Instant>,
    /// The store's last count: (others announcing, sites).
    count: Option<(u32, u32)>,
    /// Why the last withdraw was decided locally.
    local: Option<String>,
    /// Another site changed while a question was in flight: its answer may
    /// predate the change, so a hold asks again at once.
    recheck: bool,
    /// An entry saying "announcing" was not published while a withdraw
    /// question was in flight (see [`Core::publish`]): the verdict
    /// publishes it.
    unpublished: bool,
}

#[derive(Debug)]
struct Ask {
    ticket: u64,
    deadline: Instant,
    purpose: Purpose,
}

#[derive(Debug)]
enum Purpose {
    Health,
    Drain { reply: u64, saved: SavedDrain, drain: Drain },
    Maintenance,
}

impl GuardRt {
    /// The route stays announced only because of the guard.
    pub(super) fn keeps_announced(&self) -> bool {
        self.asking.is_some() || self.held.is_some()
    }

    /// Held by the store's verdict.
    pub(super) fn is_held(&self) -> bool {
        self.held.is_some()
    }

    /// When an outstanding question times out.
    pub(super) fn deadline(&self) -> Option<Instant> {
        [&self.asking, &self.other].into_iter().flatten().map(|a| a.deadline).min()
    }
}

impl<W: Write> Core<W> {
    /// Turns the fleet guard on, for a store whose calls take at most
    /// `timeout`; the store counts as not connected until it says so.
    pub fn enable_fleet(&mut self, timeout: Duration) {
        self.fleet = Some(FleetState {
            connected: false,
            detail: "connecting".into(),
            timeout,
            last_ticket: 0,
            verdicts: Verdicts::default(),
            waiting: HashMap::new(),
            last_reply: 0,
        });
    }

    /// The services the fleet guards (for [`crate::fleet::Fleet::start`]).
    pub fn guarded_services(&self) -> Vec<String> {
        self.ids().filter(|&i| self.rt(i).service.guard.is_some()).map(|i| self.rt(i).service.name.clone()).collect()
    }

    fn connected(&self) -> bool {
        self.fleet.as_ref().is_some_and(|f| f.connected)
    }

    /// The service's `min_sites` when it is guarded and a fleet runs.
    fn min_sites(&self, i: usize) -> Option<u32> {
        self.fleet.as_ref()?;
        self.rt(i).service.guard.map(|g| g.min_sites)
    }

    fn announced(&self, i: usize) -> bool {
        self.rt(i).keys.iter().any(|k| self.routes.announced(k).is_some())
    }

    /// Called by `assert` before the routes follow a new state: decides
    /// whether a guarded withdraw asks first (the route then stays
    /// announced), and lets go of a held service that no longer withdraws
    /// for health.
    pub(super) fn guard_assert(&mut self, i: usize, advert: Advert, now: Instant, fx: &mut Effects) {
        let Some(min_sites) = self.min_sites(i) else { return };
        let rt = self.rt(i);
        let withdraws = matches!(rt.service.action(advert), Action::Withdraw);
        let health = matches!(advert, Advert::Down | Advert::Suppressed);
        let name = rt.service.name.clone();
        let was_kept = rt.guard.keeps_announced();
        let was_held = rt.guard.is_held();
        if health && withdraws {
            // Already asking or held: the next answer decides.
            if was_kept || !self.announced(i) {
                return;
            }
            if !self.connected() {
                if let Some(f) = self.fleet.as_mut() {
                    f.verdicts.local += 1;
                }
                let why =
                    self.fleet.as_ref().map_or_else(String::new, |f| format!("store not connected: {}", f.detail));
                self.rt_mut(i).guard.local = Some(why.clone());
                fx.events.push(LogEvent::Fleet(FleetEvent::Local { service: name, why }));
                return;
            }
            fx.events.push(LogEvent::Fleet(FleetEvent::Asking { service: name, min_sites }));
            self.ask(i, Purpose::Health, now, fx);
            return;
        }
        let g = &mut self.rt_mut(i).guard;
        g.asking = None;
        g.held = None;
        if advert == Advert::Disabled && withdraws && (was_kept || self.announced(i)) {
            if was_held {
                let (others, sites) = self.rt(i).guard.count.unzip();
                fx.events.push(LogEvent::Fleet(FleetEvent::MaintenanceOverride { service: name, others, sites }));
            } else if self.connected() && self.rt(i).guard.other.is_none() {
                // Never refused; asked only to say so when it overrides.
                self.ask(i, Purpose::Maintenance, now, fx);
            }
        } else if was_kept {
            fx.events.push(LogEvent::Fleet(FleetEvent::Released { service: name, to: advert }));
        }
    }

    /// Asks the store about service `i`.
    fn ask(&mut self, i: usize, purpose: Purpose, now: Instant, fx: &mut Effects) {
        let Some(min_sites) = self.min_sites(i) else { return };
        let Some(fleet) = self.fleet.as_mut() else { return };
        fleet.last_ticket += 1;
        let ticket = fleet.last_ticket;
        let deadline = now + fleet.timeout + SLACK;
        let rt = self.rt(i);
        let withdrawn_state = match &purpose {
            Purpose::Health => rt.fsm.asserted().map_or("DOWN", Advert::name).to_string(),
            Purpose::Drain { .. } => "DRAINED".into(),
            Purpose::Maintenance => "DISABLED".into(),
        };
        let withdrawn = Published {
            announcing: false,
            held: false,
            state: withdrawn_state,
            since: now,
            reason: rt.last_reason.clone(),
        };
        fx.fleet.push(FleetCall::Ask { service: rt.service.name.clone(), ticket, min_sites, withdrawn });
        let ask = Ask { ticket, deadline, purpose };
        let g = &mut self.rt_mut(i).guard;
        match ask.purpose {
            Purpose::Health => g.asking = Some(ask),
            _ => g.other = Some(ask),
        }
        self.rearm(i);
    }

    /// This site's entry for service `i`, for the store.
    ///
    /// Not an entry that says "announcing" while a health or drain
    /// question is in flight: the store already says so, and the client
    /// writes in order, so such a publish would land right after a granted
    /// withdraw and undo it (another site would count this one, and both
    /// would withdraw past `min_sites`). The verdict publishes the outcome.
    pub(super) fn publish(&mut self, i: usize, fx: &mut Effects) {
        if self.min_sites(i).is_none() {
            return;
        }
        let rt = self.rt(i);
        let Some(advert) = rt.fsm.asserted() else { return };
        let keeps = rt.guard.keeps_announced();
        // A drain's GRACEFUL_SHUTDOWN stage still announces, but the site is
        // leaving: the others must not count on it (a site failing during
        // the stage would withdraw too, and nothing would be left).
        let announcing =
            keeps || (advert != Advert::Draining && matches!(rt.service.action(advert), Action::Announce(_)));
        let (state, reason, since) = match (rt.guard.held, rt.guard.count) {
            (Some(since), Some((o, s))) => {
                ("HELD".to_string(), format!("withdrawing would leave {o} of {s} sites announcing"), since)
            }
            _ => (advert.name().to_string(), rt.last_reason.clone(), rt.fsm.since()),
        };
        let withdraw_asked = rt.guard.asking.is_some()
            || rt.guard.other.as_ref().is_some_and(|a| matches!(a.purpose, Purpose::Drain { .. }));
        let entry = Published { announcing, held: keeps, state, since, reason };
        let service = rt.service.name.clone();
        let g = &mut self.rt_mut(i).guard;
        g.unpublished = announcing && withdraw_asked;
        if !g.unpublished {
            fx.fleet.push(FleetCall::Publish { service, entry });
        }
    }

    /// A probe round of service `i` ended: a held service asks again.
    ///
    /// Not while its probes pass again (RISING towards UP): granted now,
    /// the withdraw would be followed by an announce as soon as `rise` is
    /// met, a flap every peer sees for a site that is coming back. It stays
    /// held until UP, or asks again at the next failing round. Only when
    /// the state machine is rising from DOWN: SUPPRESSED (dampened) stays
    /// withdrawn whatever the probes say until the damper releases it, so
    /// it asks again as usual.
    pub(super) fn guard_round(&mut self, i: usize, now: Instant, fx: &mut Effects) {
        let rt = self.rt(i);
        let recovering = rt.fsm.asserted() == Some(Advert::Down)
            && rt.last_outcomes.iter().all(|o| matches!(o, Some((o, _)) if o.health != Health::Down));
        let g = &rt.guard;
        if g.is_held() && g.asking.is_none() && !recovering && self.connected() {
            self.ask(i, Purpose::Health, now, fx);
        }
    }

    /// Another site's entry of service `i` changed: a held service asks
    /// again (after the answer in flight, if any).
    fn guard_changed(&mut self, i: usize, now: Instant, fx: &mut Effects) {
        if self.rt(i).guard.asking.is_some() {
            self.rt_mut(i).guard.recheck = true;
        } else {
            self.guard_round(i, now, fx);
        }
    }

    /// The fleet client said something.
    pub fn fleet_notice(&mut self, notice: Notice, now: Instant, fx: &mut Effects) -> anyhow::Result<()> {
        if self.fleet.is_none() {
            return Ok(());
        }
        match notice {
            Notice::Verdict { service, ticket, verdict } => {
                let Some(&i) = self.by_name.get(&service) else { return Ok(()) };
                self.verdict(i, ticket, verdict, false, now, fx)?;
            }
            Notice::Changed { service } => {
                if let Some(&i) = self.by_name.get(&service) {
                    self.guard_changed(i, now, fx);
                }
            }
            Notice::Store { connected, detail } => {
                let Some(fleet) = self.fleet.as_mut() else { return Ok(()) };
                let was = fleet.connected;
                fleet.connected = connected;
                fleet.detail.clone_from(&detail);
                if was != connected || !connected {
                    fx.events.push(LogEvent::Fleet(FleetEvent::Store { connected, detail: detail.clone() }));
                }
                if connected && !was {
                    // Rejoin: the entries went with the old lease.
                    let ids: Vec<usize> = self.ids().collect();
                    for i in ids {
                        self.publish(i, fx);
                    }
                } else if !connected {
                    // Never hold a broken site on a stale view.
                    let why = format!("store not connected: {detail}");
                    let ids: Vec<usize> = self.ids().collect();
                    for i in ids {
                        let tickets: Vec<u64> = {
                            let g = &self.rt(i).guard;
                            [&g.asking, &g.other].into_iter().flatten().map(|a| a.ticket).collect()
                        };
                        for t in tickets {
                            self.verdict(i, t, Verdict::Local { why: why.clone() }, false, now, fx)?;
                        }
                        if self.rt(i).guard.is_held() {
                            // Held without a question in flight.
                            self.decide_locally(i, why.clone(), now, fx)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Timers of service `i`: a question not answered in time is decided
    /// locally.
    pub(super) fn guard_due(&mut self, i: usize, now: Instant, fx: &mut Effects) -> anyhow::Result<()> {
        let timeout = self.fleet.as_ref().map_or(Duration::ZERO, |f| f.timeout);
        let due: Vec<u64> = {
            let g = &self.rt(i).guard;
            [&g.asking, &g.other].into_iter().flatten().filter(|a| a.deadline <= now).map(|a| a.ticket).collect()
        };
        for t in due {
            let why = format!("the store did not answer within {}", crate::model::duration::show(timeout));
            self.verdict(i, t, Verdict::Local { why }, true, now, fx)?;
        }
        Ok(())
    }

    fn decide_locally(&mut self, i: usize, why: String, now: Instant, fx: &mut Effects) -> anyhow::Result<()> {
        let rt = self.rt_mut(i);
        rt.guard.asking = None;
        rt.guard.held = None;
        rt.guard.local = Some(why.clone());
        let service = rt.service.name.clone();
        fx.events.push(LogEvent::Fleet(FleetEvent::Local { service, why }));
        self.sync(i, now)?;
        self.publish(i, fx);
        self.rearm(i);
        Ok(())
    }

    /// The answer to question `ticket` of service `i` (`timed_out`: the
    /// core's own bound ran out).
    fn verdict(
        &mut self,
        i: usize,
        ticket: u64,
        verdict: Verdict,
        timed_out: bool,
        now: Instant,
        fx: &mut Effects,
    ) -> anyhow::Result<()> {
        let g = &mut self.rt_mut(i).guard;
        let ask = if g.asking.as_ref().is_some_and(|a| a.ticket == ticket) {
            g.asking.take()
        } else if g.other.as_ref().is_some_and(|a| a.ticket == ticket) {
            g.other.take()
        } else {
            // An answer to a question no longer asked (the service recovered).
            return Ok(());
        };
        let Some(ask) = ask else { return Ok(()) };
        if let Some(f) = self.fleet.as_mut() {
            let v = &mut f.verdicts;
            match (&verdict, timed_out) {
                (_, true) => v.timeout += 1,
                (Verdict::Withdraw, _) => v.withdraw += 1,
                (Verdict::Hold { .. }, _) => v.hold += 1,
                (Verdict::Local { .. }, _) => v.local += 1,
            }
        }
        let count_changed = match verdict {
            Verdict::Hold { others_announcing, sites } => {
                let g = &mut self.rt_mut(i).guard;
                g.count.replace((others_announcing, sites)) != Some((others_announcing, sites))
            }
            _ => false,
        };
        let recheck = matches!(ask.purpose, Purpose::Health) && std::mem::take(&mut self.rt_mut(i).guard.recheck);
        let name = self.rt(i).service.name.clone();
        match ask.purpose {
            Purpose::Health => match verdict {
                Verdict::Withdraw => {
                    let rt = self.rt_mut(i);
                    let was_held = rt.guard.held.take().is_some();
                    rt.guard.local = None;
                    fx.events.push(LogEvent::Fleet(FleetEvent::Granted { service: name, was_held }));
                    self.sync(i, now)?;
                    self.publish(i, fx);
                }
                Verdict::Hold { others_announcing, sites } => {
                    let rt = self.rt_mut(i);
                    rt.guard.local = None;
                    let entering = rt.guard.held.is_none();
                    if entering {
                        rt.guard.held = Some(now);
                        let held = FleetEvent::Held { service: name, others: others_announcing, sites };
                        fx.events.push(LogEvent::Fleet(held));
                    }
                    // The entry says why, with the count.
                    if entering || count_changed || self.rt(i).guard.unpublished {
                        self.publish(i, fx);
                    }
                    if recheck && self.connected() {
                        self.ask(i, Purpose::Health, now, fx);
                    }
                }
                Verdict::Local { why } => self.decide_locally(i, why, now, fx)?,
            },
            Purpose::Maintenance => {
                if let Verdict::Hold { others_announcing, sites } = verdict {
                    let service = name;
                    let (others, sites) = (Some(others_announcing), Some(sites));
                    fx.events.push(LogEvent::Fleet(FleetEvent::MaintenanceOverride { service, others, sites }));
                }
            }
            Purpose::Drain { reply, saved, drain } => {
                let refused = match verdict {
                    Verdict::Hold { others_announcing, sites } => {
                        let service = name.clone();
                        fx.events.push(LogEvent::Fleet(FleetEvent::DrainRefused {
                            service,
                            others: others_announcing,
                            sites,
                        }));
                        Some(format!("{name}: withdrawing would leave {others_announcing} of {sites} sites announcing"))
                    }
                    Verdict::Local { why } => {
                        fx.events.push(LogEvent::Fleet(FleetEvent::Local { service: name.clone(), why }));
                        None
                    }
                    Verdict::Withdraw => None,
                };
                let end = match refused {
                    None => {
                        self.start_drain(i, saved, drain, now, fx)?;
                        fx.save_drains = true;
                        DrainEnd::Drained
                    }
                    Some(why) => {
                        if self.rt(i).guard.unpublished {
                            self.publish(i, fx);
                        }
                        DrainEnd::Refused(why)
                    }
                };
                self.drain_answered(reply, name, end, fx);
            }
        }
        self.rearm(i);
        Ok(())
    }

    /// Whether a drain of service `i` must ask the store first.
    pub(super) fn drain_asks(&self, i: usize, force: bool) -> bool {
        !force
            && self.min_sites(i).is_some()
            && self.connected()
            && self.rt(i).drain_info.is_none()
            && self.rt(i).guard.other.is_none()
            && (self.announced(i) || self.rt(i).guard.keeps_announced())
    }

    /// A new control reply that waits for drain verdicts; `None` when too
    /// many wait already.
    pub(super) fn wait_reply(&mut self) -> Option<u64> {
        let fleet = self.fleet.as_mut()?;
        if fleet.waiting.len() >= MAX_WAITING_REPLIES {
            return None;
        }
        fleet.last_reply += 1;
        fleet.waiting.insert(fleet.last_reply, Waiting::default());
        Some(fleet.last_reply)
    }

    /// Asks the store about draining service `i`, for control reply `reply`.
    pub(super) fn ask_drain(
        &mut self,
        i: usize,
        reply: u64,
        saved: SavedDrain,
        drain: Drain,
        now: Instant,
        fx: &mut Effects,
    ) {
        if let Some(w) = self.fleet.as_mut().and_then(|f| f.waiting.get_mut(&reply)) {
            w.left += 1;
        }
        self.ask(i, Purpose::Drain { reply, saved, drain }, now, fx);
    }

    /// The services of control reply `reply` drained at once, and whether
    /// it still waits. A reply that waits for nothing is answered now.
    pub(super) fn finish_wait(&mut self, reply: u64, drained: Vec<String>) -> Option<Reply> {
        let fleet = self.fleet.as_mut()?;
        let w = fleet.waiting.get_mut(&reply)?;
        w.drained.extend(drained);
        if w.left > 0 {
            return None;
        }
        let w = fleet.waiting.remove(&reply)?;
        Some(Reply::Drained(w.drained))
    }

    fn drain_answered(&mut self, reply: u64, name: String, end: DrainEnd, fx: &mut Effects) {
        let Some(fleet) = self.fleet.as_mut() else { return };
        let Some(w) = fleet.waiting.get_mut(&reply) else { return };
        w.left = w.left.saturating_sub(1);
        match end {
            DrainEnd::Refused(r) => w.refused.push(r),
            DrainEnd::Drained => w.drained.push(name),
            DrainEnd::Reloaded => w.reloaded.push(name),
        }
        if w.left > 0 {
            return;
        }
        let Some(w) = fleet.waiting.remove(&reply) else { return };
        let answer = if w.refused.is_empty() && w.reloaded.is_empty() {
            Reply::Drained(w.drained)
        } else {
            let mut parts = Vec::new();
            if !w.refused.is_empty() {
                parts.push(format!("drain refused by the fleet guard: {}", w.refused.join("; ")));
            }
            if !w.reloaded.is_empty() {
                parts.push(format!(
                    "not drained, the service changed by a reload while the fleet store was asked: {}",
                    w.reloaded.join(", ")
                ));
            }
            let mut msg = parts.join("; ");
            if !w.drained.is_empty() {
                let _ = write!(msg, " (drained: {})", w.drained.join(", "));
            }
            if !w.refused.is_empty() {
                msg.push_str("; drain --force to drain anyway");
            }
            Reply::Error(msg)
        };
        fx.replies.push((reply, answer));
    }

    /// A reload removed or replaced service `name`, whose guard state was
    /// `old`: a drain's control reply waiting for its verdict is answered
    /// now (the verdict would find no question), so replies never pile up.
    pub(super) fn guard_dropped(&mut self, name: &str, old: GuardRt, fx: &mut Effects) {
        if let Some(Ask { purpose: Purpose::Drain { reply, .. }, .. }) = old.other {
            self.drain_answered(reply, name.to_string(), DrainEnd::Reloaded, fx);
        }
    }

    /// A reload kept service `i`'s state, guard included. When the new
    /// config no longer guards it (`"fleet": false`, or no fleet at all),
    /// nothing would ever let go of a hold: the guard lets go now, a drain
    /// waiting for a verdict goes ahead as without a guard, and the entry
    /// says it is no longer counted. The caller then syncs the routes.
    pub(super) fn guard_reloaded(
        &mut self,
        i: usize,
        was_guarded: bool,
        now: Instant,
        fx: &mut Effects,
    ) -> anyhow::Result<()> {
        if self.min_sites(i).is_some() {
            return Ok(());
        }
        let rt = self.rt_mut(i);
        let old = std::mem::take(&mut rt.guard);
        let name = rt.service.name.clone();
        let asserted = rt.fsm.asserted();
        let had_state = old.asking.is_some() || old.other.is_some() || old.held.is_some();
        if old.keeps_announced()
            && let Some(to) = asserted
        {
            fx.events.push(LogEvent::Fleet(FleetEvent::Released { service: name.clone(), to }));
        }
        if let Some(Ask { purpose: Purpose::Drain { reply, saved, drain }, .. }) = old.other {
            self.start_drain(i, saved, drain, now, fx)?;
            fx.save_drains = true;
            self.drain_answered(reply, name.clone(), DrainEnd::Drained, fx);
        }
        if (had_state || was_guarded) && self.fleet.is_some() {
            // Not counted by the other sites any more (the key goes with the
            // lease; there is no delete).
            let since = now;
            let entry = Published {
                announcing: false,
                held: false,
                state: "UNGUARDED".into(),
                since,
                reason: "the fleet guard was removed by a reload".into(),
            };
            fx.fleet.push(FleetCall::Publish { service: name, entry });
        }
        Ok(())
    }

    /// The guard's part of a service's status (`None`: not guarded, or no fleet).
    pub(super) fn guard_status(&self, i: usize) -> Option<GuardStatus> {
        let min_sites = self.min_sites(i)?;
        let g = &self.rt(i).guard;
        Some(GuardStatus {
            min_sites,
            held: g.is_held(),
            asking: g.asking.is_some(),
            others_announcing: g.count.map(|c| c.0),
            sites: g.count.map(|c| c.1),
            local: g.local.clone(),
        })
    }

    /// The store's part of the status.
    pub(super) fn fleet_status(&self) -> Option<FleetStatus> {
        self.fleet.as_ref().map(|f| FleetStatus { connected: f.connected, detail: f.detail.clone() })
    }

    /// The fleet metrics, in the text exposition format (appended to the rest).
    pub(super) fn fleet_metrics(&self, out: &mut String) {
        let Some(f) = &self.fleet else { return };
        let _ = writeln!(
            out,
            "# HELP exaprobe_fleet_store_connected 1 while the fleet store is reachable with a live lease."
        );
        let _ = writeln!(out, "# TYPE exaprobe_fleet_store_connected gauge");
        let _ = writeln!(out, "exaprobe_fleet_store_connected {}", u8::from(f.connected));
        let _ = writeln!(out, "# HELP exaprobe_service_held 1 while the fleet guard holds the service announced.");
        let _ = writeln!(out, "# TYPE exaprobe_service_held gauge");
        for i in self.ids() {
            let rt = self.rt(i);
            if rt.service.guard.is_some() {
                let _ = writeln!(
                    out,
                    "exaprobe_service_held{{service=\"{}\"}} {}",
                    rt.service.name,
                    u8::from(rt.guard.is_held())
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP exaprobe_fleet_verdicts_total Guarded withdraws and drains by how they were decided (local: store lost or said so; timeout: no answer in time)."
        );
        let _ = writeln!(out, "# TYPE exaprobe_fleet_verdicts_total counter");
        let v = f.verdicts;
        for (name, n) in [("withdraw", v.withdraw), ("hold", v.hold), ("local", v.local), ("timeout", v.timeout)] {
            let _ = writeln!(out, "exaprobe_fleet_verdicts_total{{verdict=\"{name}\"}} {n}");
        }
    }
}

mod event;
#[cfg(test)]
mod tests;

pub use self::event::FleetEvent;
