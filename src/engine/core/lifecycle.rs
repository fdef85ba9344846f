//! Reloads and shutdown: the two moments when many routes change at once,
//! decided by the route table (withdraws of routes nobody wants first; on
//! shutdown, every route that may be announced).

use std::io::Write;
use std::time::{Duration, Instant};

use super::verify::VERIFY_AFTER_RELOAD;
use super::{Core, Effects, Runtime};
use crate::core::fsm::{Advert, Drain};
use crate::engine::events::LogEvent;
use crate::engine::routes::Want;
use crate::exabgp::encoder;
use crate::model::service::Service;

impl<W: Write> Core<W> {
    /// Applies a new, validated config. Unchanged services keep everything;
    /// a changed one keeps its state when its probing is the same (and an
    /// operator's drain in any case); removed ones are withdrawn; new ones
    /// start in INIT. The route table then decides the lines: withdraws of
    /// routes no longer wanted first, then the announcements, so that a
    /// prefix that moved between services is never left withdrawn.
    pub fn reload(&mut self, new: Vec<Service>, now: Instant, fx: &mut Effects) -> anyhow::Result<()> {
        let (mut kept, mut changed, mut added) = (0, 0, 0);
        let mut fresh = Vec::new();
        let mut keep = vec![false; self.slots.len()];
        // Route keys that their service no longer has (removed, or changed).
        let mut gone = Vec::new();
        // Services whose routes must be brought to their (new) state.
        let mut touched = Vec::new();
        for service in new {
            let Some(&i) = self.by_name.get(&service.name) else {
                fresh.push(service);
                added += 1;
                continue;
            };
            keep[i] = true;
            if *self.rt(i).service == service {
                kept += 1;
                continue;
            }
            changed += 1;
            let mut old = self.slots[i].take().expect("a live service id");
            let same_probing = old.service.checks == service.checks
                && old.service.timing == service.timing
                && old.service.require == service.require
                && old.service.disable_files == service.disable_files
                && old.service.dampening == service.dampening;
            let mut rt = Runtime::new(service, now);
            if same_probing {
                // Keep the state and counters; re-announce with the new attributes.
                rt.fsm = old.fsm.clone();
                rt.next_probe = old.next_probe;
                rt.round = old.round.take();
                rt.last_assert = old.last_assert;
                rt.last_outcomes = std::mem::take(&mut old.last_outcomes);
                rt.last_reason = std::mem::take(&mut old.last_reason);
                // A held (or asking) service stays so: a reload of its
                // attributes must not withdraw it without asking.
                rt.guard = std::mem::take(&mut old.guard);
            } else {
                let name = old.service.name.clone();
                self.guard_dropped(&name, std::mem::take(&mut old.guard), fx);
                if let Some(r) = &old.round {
                    self.rounds.remove(&r.id);
                }
                if let Some(drain) = old.fsm.drain() {
                    // New checks start in INIT, but an operator's drain stays.
                    rt.fsm.start_drain(Drain { stage: rt.service.drain.stage, ..drain }, now);
                }
            }
            rt.drain_info = old.drain_info.take();
            gone.extend(std::mem::take(&mut old.keys));
            self.verify.forget(&old.service);
            self.slots[i] = Some(rt);
            touched.push((i, old.service.guard.is_some()));
        }
        let mut removed = 0;
        for (i, keep) in keep.into_iter().enumerate() {
            if keep || self.slots[i].is_none() {
                continue;
            }
            let mut rt = self.slots[i].take().expect("checked above");
            self.guard_dropped(&rt.service.name, std::mem::take(&mut rt.guard), fx);
            removed += 1;
            self.metrics.forget_service(&rt.service.name);
            fx.events.push(LogEvent::Removed { service: rt.service.name.clone() });
            self.by_name.remove(&rt.service.name);
            if let Some(r) = &rt.round {
                self.rounds.remove(&r.id);
            }
            self.timers.clear(i);
            self.verify.forget(&rt.service);
            gone.extend(rt.keys);
        }
        self.add_services(fresh, now);
        // Withdraws first: routes of removed services and old routes of
        // changed ones that no service wants now.
        let owned: std::collections::HashSet<String> = self.ids().flat_map(|i| self.rt(i).keys.clone()).collect();
        let mut strays: Vec<String> =
            self.routes.all_announced().filter(|k| !owned.contains(*k)).map(str::to_string).collect();
        strays.sort();
        for key in ordered_unique(gone.into_iter().chain(strays)).filter(|k| !owned.contains(k)) {
            if self.routes.may_be_announced(&key)
                && let Some(line) = self.routes.want(&key, Want::Withdraw)
            {
                self.writer.send(line, Some(key), now)?;
            }
        }
        self.routes.retain_withdrawn(|k| owned.contains(k));
        for (i, was_guarded) in touched {
            // A guard the new config removed lets go first.
            self.guard_reloaded(i, was_guarded, now, fx)?;
            self.sync(i, now)?;
            self.rearm(i);
        }
        fx.events.push(LogEvent::Reloaded { kept, changed, added, removed });
        if self.verify.every.is_some() && !self.verify.asked {
            self.verify.at = now.checked_add(VERIFY_AFTER_RELOAD);
        }
        Ok(())
    }

    /// The first step of stopping on SIGTERM: services with
    /// `drain.on_shutdown` that are announced get their drain attributes.
    /// Returns how long to wait before the final withdraw (the longest drain
    /// stage), or `None` to withdraw at once.
    pub fn begin_shutdown(&mut self, now: Instant, fx: &mut Effects) -> anyhow::Result<Option<Duration>> {
        let draining: Vec<usize> = self
            .ids()
            .filter(|&i| {
                let rt = self.rt(i);
                rt.service.drain.on_shutdown && matches!(rt.fsm.asserted(), Some(Advert::Up | Advert::Degraded))
            })
            .collect();
        let stage = draining.iter().map(|&i| self.rt(i).service.drain.stage).max();
        for i in draining {
            let rt = self.rt(i);
            fx.events.push(LogEvent::ShutdownDrain { service: rt.service.name.clone() });
            let lines = encoder::lines(&rt.service, Advert::Draining);
            for (key, line) in rt.keys.clone().into_iter().zip(lines) {
                if let Some(line) = self.routes.want(&key, Want::Announce(line)) {
                    self.writer.send(line, Some(key), now)?;
                }
            }
        }
        Ok(stage)
    }

    /// The last lines before exit: a withdraw of every route that may be
    /// announced: sent announced, belonging to a service and never told, or
    /// with a line still queued (a withdraw waiting behind an unacked
    /// command is sent too). They are meant to be written at once, ahead of
    /// anything queued, which they replace.
    pub fn final_withdraws(&mut self) -> Vec<String> {
        // Services' routes in config order, then any other announced route.
        let mut keys: Vec<String> = self.ids().flat_map(|i| self.rt(i).keys.clone()).collect();
        let mut strays: Vec<String> = self.routes.all_announced().map(str::to_string).collect();
        strays.sort();
        keys.extend(strays);
        keys.extend(self.writer.pending_keys().map(str::to_string));
        let queued: std::collections::HashSet<&str> = self.writer.pending_keys().collect();
        let keys: Vec<String> = ordered_unique(keys.into_iter())
            .filter(|k| self.routes.may_be_announced(k) || queued.contains(k.as_str()))
            .collect();
        for k in &keys {
            self.routes.want(k, Want::Withdraw);
        }
        keys
    }
}

/// The items of `items` without repeats, in first-seen order.
fn ordered_unique(items: impl Iterator<Item = String>) -> impl Iterator<Item = String> {
    let mut seen = std::collections::HashSet::new();
    items.filter(move |k| seen.insert(k.clone()))
}
