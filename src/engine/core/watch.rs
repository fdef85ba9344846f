//! What a watch event does (issue 13), in the pure core: time passed in.
//!
//! The shell's watcher ([`crate::engine::watch`]) tells the core that a
//! service's process exited, that its listener closed, that a maintenance
//! file appeared or went, or how each watch is doing. The decision rule:
//!
//! - An event starts a probe round **at once**. If a round is running, it is
//!   marked and another round is queued to start as soon as it ends (a round
//!   started before the event may have probed a process that was still
//!   alive) — unless that round was itself started by an event (or one is
//!   queued already): the process exit and the listener close of one crash
//!   cost one round.
//! - A **failed** probe in a round started by, or running during, a *loss*
//!   event (process exited, listener gone, unit inactive) is definitive: the
//!   check goes DOWN at once, skipping the rest of `fall`
//!   ([`crate::core::fsm::ServiceFsm::observe_after_event`]) — unless the
//!   service says `"trust_events": false`, when the normal `fall` applies.
//!   Definitive applies to **every** check of the service in that round:
//!   with `require: any`, a check unrelated to the watched process that
//!   fails in that round goes DOWN at once as well.
//! - A **successful** probe changes nothing. "A restart within the probe's
//!   timeout gives no flap" holds when the listening socket survives the
//!   restart (socket activation, a master process): the round after the
//!   exit connects. A plain supervisor restart closes the port for a
//!   moment: that round fails, the service is DOWN at once and returns
//!   after `rise`; `"trust_events": false` is the choice for such
//!   services.
//! - A maintenance file that appears asserts DISABLED at once, whatever the
//!   rate limit or a running round (which is dropped).
//! - Recovery always goes through `rise`: events never make a service UP.
//!   A watch that sees the process or the listener come back starts a
//!   round too (not definitive), so that the rise starts at once rather
//!   than at the next interval.
//! - Events are **rate-limited** per service by a token bucket
//!   ([`BURST`] rounds, one more every [`REFILL`]): in a crash loop, further
//!   events mark the next round definitive only if it starts within twice
//!   the probe timeout of the event; a later normal round takes the normal
//!   `fall`. Dampening applies as to any other flap.
//! - A loss event marks only the round that probes right after it: a
//!   second loss while an event round runs is decided by that round and
//!   leaves no mark for a later one.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Core, Effects};
use crate::engine::events::LogEvent;
use crate::model::watch::Listen;
use crate::ops::control::proto::WatchStatus;

/// Event rounds a service may start back to back.
pub const BURST: u32 = 5;

/// One more event round becomes available this often (so at most
/// [`BURST`] + 10 s / REFILL rounds in any 10 s).
pub const REFILL: Duration = Duration::from_secs(2);

/// What a watch saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// The watched process exited.
    ProcessExited {
        /// Its pid.
        pid: u32,
    },
    /// No socket listens on a watched address any more.
    ListenerGone {
        /// The listener.
        listen: Listen,
    },
    /// The watched process is back: the pid file names a new, live one.
    ProcessStarted {
        /// Its pid.
        pid: u32,
    },
    /// A listener is back on a watched address.
    ListenerBack {
        /// The listener.
        listen: Listen,
    },
    /// A maintenance file appeared (`exists`) or went away.
    Maintenance {
        /// The file.
        path: PathBuf,
        /// Whether it exists now.
        exists: bool,
    },
    /// The systemd unit is active again.
    UnitActive {
        /// The unit.
        unit: String,
    },
    /// The systemd unit left the active state.
    UnitInactive {
        /// The unit.
        unit: String,
        /// Its state now (`deactivating`, `failed`, …).
        state: String,
    },
}

/// Where an event came from: the label of the events counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// A pidfd (the process exited).
    Pid,
    /// Socket diagnostics (the listener closed).
    Listen,
    /// inotify on a maintenance file.
    Maintenance,
    /// The unit's state over D-Bus.
    Unit,
}

impl Source {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Pid => "pid",
            Source::Listen => "listen",
            Source::Maintenance => "maintenance",
            Source::Unit => "unit",
        }
    }

    /// Every source, for counters that start at 0.
    pub const ALL: [Source; 4] = [Source::Pid, Source::Listen, Source::Maintenance, Source::Unit];
}

impl WatchEvent {
    /// Its source.
    pub fn source(&self) -> Source {
        match self {
            WatchEvent::ProcessExited { .. } | WatchEvent::ProcessStarted { .. } => Source::Pid,
            WatchEvent::ListenerGone { .. } | WatchEvent::ListenerBack { .. } => Source::Listen,
            WatchEvent::Maintenance { .. } => Source::Maintenance,
            WatchEvent::UnitInactive { .. } | WatchEvent::UnitActive { .. } => Source::Unit,
        }
    }

    /// Whether it says the service lost what it needs, so that a failed
    /// probe after it is definitive.
    pub fn is_loss(&self) -> bool {
        matches!(
            self,
            WatchEvent::ProcessExited { .. } | WatchEvent::ListenerGone { .. } | WatchEvent::UnitInactive { .. }
        )
    }
}

impl fmt::Display for WatchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchEvent::ProcessExited { pid } => write!(f, "process {pid} exited"),
            WatchEvent::ListenerGone { listen } => write!(f, "listener {listen} closed"),
            WatchEvent::ProcessStarted { pid } => write!(f, "process {pid} started"),
            WatchEvent::ListenerBack { listen } => write!(f, "listener {listen} is back"),
            WatchEvent::Maintenance { path, exists: true } => write!(f, "maintenance file {} created", path.display()),
            WatchEvent::Maintenance { path, exists: false } => write!(f, "maintenance file {} removed", path.display()),
            WatchEvent::UnitInactive { unit, state } => write!(f, "unit {unit} is {state}"),
            WatchEvent::UnitActive { unit } => write!(f, "unit {unit} is active again"),
        }
    }
}

/// A token bucket: [`BURST`] tokens, one back every [`REFILL`].
#[derive(Clone, Debug, Default)]
struct Bucket {
    /// Tokens used and not yet refilled, as of `at`.
    used: u32,
    at: Option<Instant>,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let elapsed = now.saturating_duration_since(at);
            let back = u32::try_from(elapsed.as_nanos() / REFILL.as_nanos()).unwrap_or(u32::MAX);
            if back >= self.used {
                self.used = 0;
                self.at = Some(now);
            } else if back > 0 {
                self.used -= back;
                self.at = Some(at + REFILL * back);
            }
        } else {
            self.at = Some(now);
        }
        if self.used >= BURST {
            return false;
        }
        if self.used == 0 {
            self.at = Some(now);
        }
        self.used += 1;
        true
    }
}

/// The event state of one service, kept in its runtime.
#[derive(Clone, Debug, Default)]
pub(super) struct EventState {
    bucket: Bucket,
    /// The running round is definitive.
    armed: bool,
    /// The next round to start is definitive, if it starts by this time
    /// (a loss event marks only a round that probes right after it).
    pending: Option<Instant>,
    /// Start a round as soon as the running one ends.
    queued: bool,
    /// The running round was started by an event.
    event_round: bool,
    /// The loss event behind `armed`, for the transition's reason.
    cause: Option<String>,
    cause_next: Option<String>,
    /// Each watch and its state, as the watcher last reported.
    states: Vec<WatchStatus>,
}

impl EventState {
    /// A round starts: it is definitive when an event asked so.
    pub(super) fn round_started(&mut self, now: Instant) {
        self.event_round = false;
        self.armed = self.pending.take().is_some_and(|until| now <= until);
        self.cause = self.cause_next.take().filter(|_| self.armed);
    }

    /// A round ended: whether it was definitive (and `trust` allows it),
    /// with the event behind it; and whether another is queued.
    pub(super) fn round_ended(&mut self, trust: bool) -> (Option<String>, bool) {
        let armed = std::mem::take(&mut self.armed);
        let cause = self.cause.take();
        let queued = std::mem::take(&mut self.queued);
        ((armed && trust).then(|| cause.unwrap_or_default()), queued)
    }

    /// The watches' states, for `status`.
    pub(super) fn statuses(&self) -> Vec<WatchStatus> {
        self.states.clone()
    }
}

/// How long a loss event marks the next round definitive: twice the
/// longest probe timeout of the service (a running round may take one
/// timeout before the queued one starts). A round that starts later — the
/// next normal round after a rate-limited event — is an ordinary one, so a
/// stale mark cannot turn one transient failure much later into a
/// withdraw.
fn pending_for(service: &crate::model::service::Service) -> Duration {
    let longest = service.checks.iter().filter_map(|c| c.timeout).max().unwrap_or(service.timing.timeout);
    longest.max(service.timing.timeout) * 2
}

/// Most watch states kept per service: the watcher reports one per
/// configured source (one process, up to 16 listeners, one unit, the
/// maintenance files), so this bound is never reached by a valid config.
const MAX_STATES: usize = 64;

impl<W: Write> Core<W> {
    /// A watch saw `event` happen to `service` (unknown services, e.g.
    /// removed by a reload meanwhile, are ignored).
    pub fn watch_event(
        &mut self,
        service: &str,
        event: WatchEvent,
        now: Instant,
        fx: &mut Effects,
    ) -> anyhow::Result<()> {
        let Some(&i) = self.by_name.get(service) else { return Ok(()) };
        self.metrics.record_watch_event(event.source().as_str());
        let what = event.to_string();
        if let WatchEvent::Maintenance { path, exists: true } = &event {
            let reason = format!("maintenance file {} exists", path.display());
            fx.events.push(LogEvent::Watch { service: service.to_string(), what, action: "DISABLED now" });
            return self.disable_now(i, reason, now, fx);
        }
        let rt = self.rt_mut(i);
        let running = rt.round.is_some();
        // The round an event started (or the one queued) probes after this
        // event too: it decides, and nothing is left for a later round.
        let decides = running && (rt.watch.event_round || rt.watch.queued);
        if event.is_loss() {
            if running {
                rt.watch.armed = true;
                rt.watch.cause = Some(what.clone());
            }
            if !decides {
                rt.watch.pending = Some(now + pending_for(&rt.service));
                rt.watch.cause_next = Some(what.clone());
            }
        }
        let action = if decides {
            // The round an event started (or the one queued) probes after
            // this event too: one crash, one round, one token.
            "a round started by an event is running: it decides"
        } else if !rt.watch.bucket.take(now) {
            "rate-limited: the next round decides"
        } else if running {
            rt.watch.queued = true;
            "a round is running: another one right after it"
        } else {
            "probing now"
        };
        fx.events.push(LogEvent::Watch { service: service.to_string(), what, action });
        if !running && action == "probing now" {
            self.start_round(i, now, fx);
            self.rt_mut(i).watch.event_round = true;
            self.rearm(i);
        }
        Ok(())
    }

    /// A maintenance file appeared: DISABLED at once, whatever the rate
    /// limit and any running round say. A running round is dropped (its
    /// checks were looked at before the file existed; their results are
    /// ignored when they come), and the next is due an interval from now;
    /// each round looks at the maintenance files first, so the service
    /// stays DISABLED while the file exists.
    fn disable_now(&mut self, i: usize, reason: String, now: Instant, fx: &mut Effects) -> anyhow::Result<()> {
        let rt = self.rt_mut(i);
        let dropped = rt.round.take().map(|r| r.id);
        rt.watch.round_ended(false);
        rt.next_probe = now + rt.service.timing.interval;
        let before = rt.fsm.asserted();
        let advert = rt.fsm.observe_disabled(now);
        if let Some(id) = dropped {
            self.rounds.remove(&id);
        }
        if let Some(advert) = advert {
            self.assert(i, before, advert, reason, now, fx)?;
        }
        self.rearm(i);
        Ok(())
    }

    /// The watcher's view of one watch of `service` (`watch`: what is
    /// watched, `state`: `armed (pid 1234)`, `pending: …`).
    pub fn watch_state(&mut self, service: &str, watch: &str, state: &str) {
        let Some(&i) = self.by_name.get(service) else { return };
        let states = &mut self.rt_mut(i).watch.states;
        if let Some(s) = states.iter_mut().find(|s| s.watch == watch) {
            state.clone_into(&mut s.state);
        } else if states.len() < MAX_STATES {
            states.push(WatchStatus { watch: watch.to_string(), state: state.to_string() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exabgp::{AckMode, Writer};
    use crate::probe::Outcome;

    use crate::engine::core::tests::Out;

    /// A core with one service "web" (interval 10 s, rise 1, fall 3) that
    /// is UP, and its stdout.
    fn up(trust: bool) -> (Core<Out>, Out, Instant) {
        let text = format!(
            r#"{{"services": [{{"name": "web", "prefixes": ["198.51.100.1/32"],
                "checks": [{{"type": "tcp", "address": "127.0.0.1:80"}}], "interval": "10s",
                "rise": 1, "fall": 3, "dampening": false, "trust_events": {trust},
                "watch": {{"pid_file": "/run/web.pid"}}}}]}}"#
        );
        let services = crate::model::config::load(&text).unwrap().services;
        assert!(matches!(services[0].watch.process, Some(crate::model::watch::Process::PidFile(_))));
        let out = Out::default();
        let t0 = Instant::now();
        let mut core = Core::new(Writer::new(out.clone(), AckMode::NoWait).unwrap(), services, t0);
        let mut fx = Effects::default();
        core.tick(t0, &mut fx).unwrap();
        assert_eq!(answer(&mut core, &mut fx, true, t0), 1);
        assert_eq!(lines(&mut core, &out), ["announce route 198.51.100.1/32 next-hop self med 100"]);
        (core, out, t0)
    }

    /// Answers the rounds in `fx` (healthy or down); returns how many.
    fn answer(core: &mut Core<Out>, fx: &mut Effects, healthy: bool, now: Instant) -> usize {
        let jobs = std::mem::take(&mut fx.rounds);
        for job in &jobs {
            core.round_checked(job.round, None, now, fx).unwrap();
            let o = if healthy { Outcome::healthy("connected") } else { Outcome::down("refused") };
            core.probe_done(job.round, 0, o, Duration::from_millis(1), now, fx).unwrap();
        }
        jobs.len()
    }

    fn lines(core: &mut Core<Out>, out: &Out) -> Vec<String> {
        assert!(core.writer().flush(Instant::now() + Duration::from_secs(5)));
        let mut buf = out.0.lock().unwrap();
        let l = String::from_utf8_lossy(&buf).lines().map(String::from).collect();
        buf.clear();
        l
    }

    fn state(core: &Core<Out>, now: Instant) -> (String, String) {
        let s = core.status(now, 0.0).services.remove(0);
        (s.state, s.checks[0].state.clone())
    }

    const EXITED: WatchEvent = WatchEvent::ProcessExited { pid: 42 };

    #[test]
    fn an_event_then_a_failed_probe_is_down_at_once() {
        let (mut core, out, t0) = up(true);
        let t = t0 + Duration::from_secs(3);
        let mut fx = Effects::default();
        core.watch_event("web", EXITED, t, &mut fx).unwrap();
        assert_eq!(fx.rounds.len(), 1, "the event starts a round at once");
        answer(&mut core, &mut fx, false, t);
        assert_eq!(lines(&mut core, &out), ["withdraw route 198.51.100.1/32"]);
        assert_eq!(state(&core, t).0, "DOWN");
        assert!(core.status(t, 0.0).services[0].reason.starts_with("process 42 exited, then require all"));
        // Recovery goes through rise (1 here): the next normal round.
        let (mut fx, next) = (Effects::default(), t + Duration::from_secs(10));
        core.tick(next, &mut fx).unwrap();
        assert_eq!(answer(&mut core, &mut fx, true, next), 1);
        assert_eq!(state(&core, t).0, "UP");
    }

    #[test]
    fn an_event_then_a_successful_probe_changes_nothing() {
        let (mut core, out, t0) = up(true);
        let t = t0 + Duration::from_secs(3);
        let mut fx = Effects::default();
        core.watch_event("web", EXITED, t, &mut fx).unwrap();
        assert_eq!(answer(&mut core, &mut fx, true, t), 1);
        assert_eq!(lines(&mut core, &out), Vec::<String>::new());
        assert_eq!(state(&core, t), ("UP".into(), "UP".into()));
        // A later failure without an event takes the whole fall.
        let mut fx = Effects::default();
        core.tick(t + Duration::from_secs(10), &mut fx).unwrap();
        answer(&mut core, &mut fx, false, t + Duration::from_secs(10));
        assert_eq!(state(&core, t).1, "FALLING(1)");
    }

    #[test]
    fn without_trust_events_the_fall_count_applies() {
        let (mut core, out, t0) = up(false);
        let t = t0 + Duration::from_secs(3);
        let mut fx = Effects::default();
        core.watch_event("web", EXITED, t, &mut fx).unwrap();
        assert_eq!(answer(&mut core, &mut fx, false, t), 1, "still a round at once");
        assert_eq!(lines(&mut core, &out), Vec::<String>::new());
        assert_eq!(state(&core, t), ("UP".into(), "FALLING(1)".into()));
    }

    #[test]
    fn a_removed_maintenance_file_probes_now_but_is_not_a_loss() {
        let (mut core, _out, t0) = up(true);
        let t = t0 + Duration::from_secs(3);
        let mut fx = Effects::default();
        let ev = WatchEvent::Maintenance { path: "/m".into(), exists: false };
        core.watch_event("web", ev, t, &mut fx).unwrap();
        answer(&mut core, &mut fx, false, t);
        assert_eq!(state(&core, t), ("UP".into(), "FALLING(1)".into()));
    }

    #[test]
    fn an_event_during_a_round_marks_it_and_queues_another() {
        let (mut core, out, t0) = up(true);
        let t = t0 + Duration::from_secs(10);
        let mut fx = Effects::default();
        core.tick(t, &mut fx).unwrap();
        let normal = std::mem::take(&mut fx.rounds);
        assert_eq!(normal.len(), 1);
        core.round_checked(normal[0].round, None, t, &mut fx).unwrap();
        core.watch_event("web", EXITED, t, &mut fx).unwrap();
        assert!(fx.rounds.is_empty(), "rounds never overlap");
        // The running round fails: definitive.
        core.probe_done(normal[0].round, 0, Outcome::down("refused"), Duration::ZERO, t, &mut fx).unwrap();
        assert_eq!(lines(&mut core, &out), ["withdraw route 198.51.100.1/32"]);
        // The queued round starts at once.
        core.tick(t, &mut fx).unwrap();
        assert_eq!(fx.rounds.len(), 1);
    }

    #[test]
    fn events_are_rate_limited() {
        let (mut core, _out, t0) = up(true);
        let t = t0 + Duration::from_secs(3);
        let mut started = 0;
        for _ in 0..20 {
            let mut fx = Effects::default();
            core.watch_event("web", EXITED, t, &mut fx).unwrap();
            started += answer(&mut core, &mut fx, true, t);
        }
        assert_eq!(started, BURST as usize);
        // A rate-limited loss does not mark a normal round 10 s later: it
        // takes the normal fall.
        let mut fx = Effects::default();
        let next = t + Duration::from_secs(10);
        core.tick(next, &mut fx).unwrap();
        assert_eq!(answer(&mut core, &mut fx, false, next), 1);
        assert_eq!(state(&core, t), ("UP".into(), "FALLING(1)".into()));
        let text = core.render_metrics(t, true, "dry-run", 0);
        assert!(text.contains("exaprobe_watch_events_total{source=\"pid\"} 20"), "{text}");
    }

    #[test]
    fn a_second_loss_during_an_event_round_leaves_no_mark_for_a_later_round() {
        let (mut core, out, t0) = up(true);
        let t = t0 + Duration::from_secs(3);
        let mut fx = Effects::default();
        // One crash, two events in one batch: the process and its listener.
        core.watch_event("web", EXITED, t, &mut fx).unwrap();
        let listen = Listen { proto: crate::model::watch::Proto::Tcp, addr: "127.0.0.1:80".parse().unwrap() };
        core.watch_event("web", WatchEvent::ListenerGone { listen }, t, &mut fx).unwrap();
        assert_eq!(answer(&mut core, &mut fx, true, t), 1, "one round for both");
        assert_eq!(state(&core, t), ("UP".into(), "UP".into()));
        // The next normal round, 10 s later, with one transient failure:
        // the normal fall, not a withdraw.
        let (mut fx, next) = (Effects::default(), t + Duration::from_secs(10));
        core.tick(next, &mut fx).unwrap();
        assert_eq!(answer(&mut core, &mut fx, false, next), 1);
        assert_eq!(lines(&mut core, &out), Vec::<String>::new());
        assert_eq!(state(&core, next), ("UP".into(), "FALLING(1)".into()));
    }

    const CREATED: fn() -> WatchEvent = || WatchEvent::Maintenance { path: "/m".into(), exists: true };

    #[test]
    fn a_maintenance_file_disables_at_once_even_when_rate_limited() {
        let (mut core, out, t0) = up(true);
        let t = t0 + Duration::from_secs(3);
        for _ in 0..BURST {
            let mut fx = Effects::default();
            core.watch_event("web", EXITED, t, &mut fx).unwrap();
            answer(&mut core, &mut fx, true, t);
        }
        let mut fx = Effects::default();
        core.watch_event("web", CREATED(), t, &mut fx).unwrap();
        assert_eq!(lines(&mut core, &out), ["withdraw route 198.51.100.1/32"]);
        assert_eq!(state(&core, t).0, "DISABLED");
    }

    #[test]
    fn a_maintenance_file_disables_at_once_during_a_round() {
        let (mut core, out, t0) = up(true);
        let t = t0 + Duration::from_secs(10);
        let mut fx = Effects::default();
        core.tick(t, &mut fx).unwrap();
        let normal = std::mem::take(&mut fx.rounds);
        core.round_checked(normal[0].round, None, t, &mut fx).unwrap();
        core.watch_event("web", CREATED(), t, &mut fx).unwrap();
        assert_eq!(lines(&mut core, &out), ["withdraw route 198.51.100.1/32"]);
        assert_eq!(state(&core, t).0, "DISABLED");
        // The round that looked before the file existed ends healthy: ignored.
        core.probe_done(normal[0].round, 0, Outcome::healthy("connected"), Duration::ZERO, t, &mut fx).unwrap();
        assert_eq!(lines(&mut core, &out), Vec::<String>::new());
        assert_eq!(state(&core, t).0, "DISABLED");
        // And a new round can start (the next interval).
        let mut fx = Effects::default();
        core.tick(t + Duration::from_secs(10), &mut fx).unwrap();
        assert_eq!(fx.rounds.len(), 1);
    }

    #[test]
    fn watch_states_show_in_status() {
        let (mut core, _out, t0) = up(true);
        core.watch_state("web", "pid-file /run/web.pid", "pending: no such file");
        core.watch_state("web", "pid-file /run/web.pid", "armed (pid 42)");
        core.watch_state("nobody", "x", "y");
        let w = core.status(t0, 0.0).services.remove(0).watches;
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].state, "armed (pid 42)");
    }

    #[test]
    fn the_bucket_allows_a_burst_then_one_per_refill() {
        let t0 = Instant::now();
        let mut b = Bucket::default();
        assert!((0..BURST).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + REFILL / 2));
        assert!(b.take(t0 + REFILL));
        assert!(!b.take(t0 + REFILL));
        // Long quiet: full again, not more.
        let later = t0 + REFILL * 100;
        assert!((0..BURST).all(|_| b.take(later)));
        assert!(!b.take(later));
        // Events every 10 ms for 10 s: the burst, then one at 2, 4, 6 and 8 s.
        let mut b = Bucket::default();
        let n = (0..1000).filter(|k| b.take(t0 + Duration::from_millis(10) * *k)).count();
        assert_eq!(n, BURST as usize + 4);
    }
}
