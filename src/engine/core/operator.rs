//! What an operator asks of the core: control requests (status, drain,
//! undrain, recheck), the drains of the state file, and the metrics.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Answer, Core, Effects};
use crate::core::fsm::{Advert, Drain};
use crate::engine::events::LogEvent;
use crate::ops::control::{CheckStatus, DrainStatus, LastResult, Reply, Request, ServiceStatus, Status};
use crate::ops::metrics::{Live, ServiceGauges};
use crate::ops::state::{self, SavedDrain};

impl<W: Write> Core<W> {
    pub(super) fn start_drain(
        &mut self,
        i: usize,
        saved: SavedDrain,
        drain: Drain,
        now: Instant,
        fx: &mut Effects,
    ) -> anyhow::Result<()> {
        let rt = self.rt_mut(i);
        fx.events.push(LogEvent::Drained {
            service: rt.service.name.clone(),
            by: saved.by.clone(),
            reason: saved.reason.clone(),
            length: drain.until.map(|u| u.saturating_duration_since(drain.since)),
        });
        rt.drain_info = Some(saved);
        let before = rt.fsm.asserted();
        if let Some(advert) = rt.fsm.start_drain(drain, now) {
            self.assert(i, before, advert, "drained by the operator".into(), now, fx)?;
        }
        self.rearm(i);
        Ok(())
    }

    /// Applies the drains of the state file, at start; `wall` is the time
    /// since the Unix epoch, in seconds. Fails closed (see
    /// [`crate::ops::state`]): an unreadable file drains every service, a
    /// bad entry drains its own.
    pub fn restore_drains(
        &mut self,
        loaded: state::Loaded,
        path: &Path,
        wall: f64,
        now: Instant,
        fx: &mut Effects,
    ) -> anyhow::Result<()> {
        let drains = match loaded {
            state::Loaded::Read { state, problems } => {
                for p in problems {
                    log::error!("state file {}: {p}", path.display());
                }
                state.drains
            }
            state::Loaded::Unreadable { error, moved_to } => {
                log::error!(
                    "state file {} is unreadable ({error}){}; every service stays drained until undrained",
                    path.display(),
                    moved_to.map_or(String::new(), |m| format!("; kept as {}", m.display()))
                );
                let saved = SavedDrain {
                    by: state::BY_EXAPROBE.into(),
                    reason: format!("state file unreadable: {error}").chars().take(state::MAX_TEXT).collect(),
                    since: wall,
                    until: None,
                };
                self.by_name.keys().map(|name| (name.clone(), saved.clone())).collect()
            }
        };
        for (name, saved) in drains {
            if saved.until.is_some_and(|u| u <= wall) {
                continue;
            }
            let Some(&i) = self.by_name.get(&name) else { continue };
            // Bounded by state::load: since <= wall, until <= wall + MAX_AHEAD.
            let ago = Duration::try_from_secs_f64((wall - saved.since).max(0.0)).unwrap_or_default();
            let since = now.checked_sub(ago).unwrap_or(now);
            let until = saved
                .until
                .and_then(|u| Duration::try_from_secs_f64(u - wall).ok())
                .map(|d| now.checked_add(d.min(state::MAX_AHEAD)).unwrap_or(now));
            let drain = Drain { since, stage: self.rt(i).service.drain.stage, until };
            fx.events.push(LogEvent::DrainRestored { service: name, path: path.to_path_buf() });
            self.start_drain(i, saved, drain, now, fx)?;
        }
        fx.save_drains = true;
        Ok(())
    }

    /// The drains to keep in the state file.
    pub fn saved_drains(&self) -> state::State {
        let drains = self
            .ids()
            .filter_map(|i| {
                let rt = self.rt(i);
                Some((rt.service.name.clone(), rt.drain_info.clone()?))
            })
            .collect();
        state::State { drains }
    }

    /// Answers a control request; `wall` is the time since the Unix epoch.
    /// A drain that the fleet guard must ask about is answered later
    /// ([`Answer::Later`]), through [`Effects::replies`].
    pub fn control(&mut self, request: Request, now: Instant, wall: f64, fx: &mut Effects) -> anyhow::Result<Answer> {
        let targets = |core: &Self, service: &Option<String>, all: bool| -> Result<Vec<usize>, Reply> {
            match (service, all) {
                (_, true) => Ok(core.ids().collect()),
                (Some(name), false) => match core.by_name.get(name) {
                    Some(&i) => Ok(vec![i]),
                    None => Err(Reply::error(format!("no service {name:?}"))),
                },
                (None, false) => Err(Reply::error("name a service, or give \"all\": true")),
            }
        };
        Ok(Answer::Now(match request {
            Request::Status {} => Reply::Status(self.status(now, wall)),
            Request::Recheck { service } => match targets(self, &Some(service), false) {
                Err(e) => e,
                Ok(is) => {
                    for i in is {
                        self.rt_mut(i).next_probe = now;
                        self.rearm(i);
                    }
                    Reply::Done
                }
            },
            Request::Drain { service, all, duration, reason, force, by } => {
                let is = match targets(self, &service, all) {
                    Ok(is) => is,
                    Err(e) => return Ok(Answer::Now(e)),
                };
                // The one duration parser; beyond what the clocks can hold
                // (or the state file keeps) is an error, never a panic.
                let length = match duration.as_deref().map(crate::model::duration::parse).transpose() {
                    Ok(d) => d,
                    Err(e) => return Ok(Answer::Now(Reply::error(format!("for: {e}")))),
                };
                // Bounded by the parser; an Instant that still cannot hold it
                // (a clock near its end) is an error too.
                let until = match length.map(|d| now.checked_add(d)) {
                    Some(None) => return Ok(Answer::Now(Reply::error("for: too far ahead for this clock"))),
                    Some(Some(u)) => Some(u),
                    None => None,
                };
                let reason = reason.unwrap_or_default();
                if reason.chars().any(char::is_control) || reason.chars().count() > state::MAX_TEXT {
                    return Ok(Answer::Now(Reply::error(format!(
                        "reason: at most {} characters, no control characters",
                        state::MAX_TEXT
                    ))));
                }
                let mut names = Vec::new();
                // Guarded services the fleet must agree to drain wait for
                // its verdict, and so does the reply.
                let mut wait = None;
                for i in is {
                    let stage = self.rt(i).service.drain.stage;
                    let saved = SavedDrain {
                        by: by.clone(),
                        reason: reason.clone(),
                        since: wall,
                        until: length.map(|d| wall + d.as_secs_f64()),
                    };
                    let drain = Drain { since: now, stage, until };
                    if self.drain_asks(i, force) {
                        if wait.is_none() {
                            wait = self.wait_reply();
                        }
                        if let Some(reply) = wait {
                            self.ask_drain(i, reply, saved, drain, now, fx);
                            continue;
                        }
                        return Ok(Answer::Now(Reply::error("too many drains wait for the fleet store; try again")));
                    }
                    self.start_drain(i, saved, drain, now, fx)?;
                    names.push(self.rt(i).service.name.clone());
                }
                fx.save_drains = true;
                if let Some(reply) = wait {
                    return Ok(match self.finish_wait(reply, names) {
                        Some(r) => Answer::Now(r),
                        None => Answer::Later(reply),
                    });
                }
                Reply::Drained(names)
            }
            Request::Undrain { service, all } => {
                let is = match targets(self, &service, all) {
                    Ok(is) => is,
                    Err(e) => return Ok(Answer::Now(e)),
                };
                let mut names = Vec::new();
                for i in is {
                    if self.rt_mut(i).drain_info.take().is_some() {
                        let rt = self.rt_mut(i);
                        let before = rt.fsm.asserted();
                        names.push(rt.service.name.clone());
                        if let Some(advert) = rt.fsm.end_drain(now) {
                            self.assert(i, before, advert, "undrained".into(), now, fx)?;
                        }
                        self.rearm(i);
                    }
                }
                fx.save_drains = true;
                Reply::Undrained(names)
            }
        }))
    }

    /// The status report; `wall` is the time since the Unix epoch.
    pub fn status(&self, now: Instant, wall: f64) -> Status {
        let services = self
            .ids()
            .map(|i| {
                let rt = self.rt(i);
                let checks = rt
                    .service
                    .checks
                    .iter()
                    .zip(rt.fsm.checks())
                    .zip(&rt.last_outcomes)
                    .map(|((c, fsm), last)| {
                        let (rise, fall) = fsm.thresholds();
                        CheckStatus {
                            check: c.check.to_string(),
                            state: fsm.state().to_string(),
                            rise,
                            fall,
                            last: last.as_ref().map(|(o, took)| LastResult {
                                health: o.health.as_str().into(),
                                reason: o.reason.clone(),
                                detail: o.detail.clone(),
                                identity: o.identity.as_deref().map(str::to_string),
                                seconds: took.as_secs_f64(),
                            }),
                        }
                    })
                    .collect();
                let state = if rt.guard.is_held() { "HELD" } else { rt.fsm.asserted().map_or("INIT", Advert::name) };
                ServiceStatus {
                    name: rt.service.name.clone(),
                    state: state.into(),
                    wanted: rt.fsm.wanted().map_or("INIT", Advert::name).into(),
                    seconds_in_state: now.saturating_duration_since(rt.fsm.since()).as_secs_f64(),
                    reason: rt.last_reason.clone(),
                    prefixes: rt.service.prefixes.iter().map(ToString::to_string).collect(),
                    checks,
                    flap_penalty: rt.fsm.penalty(now),
                    suppressed: rt.fsm.is_suppressed(),
                    drained: rt.drain_info.as_ref().map(|d| DrainStatus {
                        by: d.by.clone(),
                        reason: d.reason.clone(),
                        seconds_ago: wall - d.since,
                        seconds_left: d.until.map(|u| (u - wall).max(0.0)),
                    }),
                    // What was last sent for each route: the route table knows.
                    last_lines: rt.keys.iter().filter_map(|k| self.routes.last_line(k)).map(str::to_string).collect(),
                    guard: self.guard_status(i),
                    watches: rt.watch.statuses(),
                }
            })
            .collect();
        Status { services, fleet: self.fleet_status() }
    }

    /// The metrics in the text exposition format.
    /// `stdin_dropped` is the inbox's count of dropped lines so far.
    pub fn render_metrics(&mut self, now: Instant, channel_up: bool, mode: &'static str, stdin_dropped: u64) -> String {
        // The writer counts lines and acks; copy what is new since last time.
        let c = self.writer.counters();
        let was = self.counted;
        self.metrics.record_lines(c.lines - was.lines);
        for (result, from, to) in [
            ("done", was.done, c.done),
            ("error", was.error, c.error),
            ("missing", was.missing, c.missing),
            ("stray", was.stray, c.stray),
        ] {
            self.metrics.record_acks(result, to - from);
        }
        self.metrics.record_dropped("stdout", c.dropped - was.dropped);
        self.metrics.record_dropped("stdin", stdin_dropped.saturating_sub(self.stdin_dropped));
        self.stdin_dropped = stdin_dropped;
        self.counted = c;
        let services = self
            .ids()
            .map(|i| {
                let rt = self.rt(i);
                ServiceGauges {
                    name: rt.service.name.clone(),
                    state: rt.fsm.asserted().map_or("INIT", Advert::name).to_string(),
                    penalty: rt.fsm.penalty(now),
                    drained: rt.drain_info.is_some(),
                    suppressed: rt.fsm.is_suppressed(),
                    prefixes: rt.service.prefixes.len(),
                }
            })
            .collect();
        let mut text = self.metrics.render(&Live { services, channel_up, mode });
        self.fleet_metrics(&mut text);
        text
    }
}
