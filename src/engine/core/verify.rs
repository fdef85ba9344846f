//! The adj-rib-out check: ask ExaBGP what it advertises, compare it with
//! what the services mean to announce, and repair the difference (ExaBGP
//! 5.0.9 once failed to withdraw).

use std::io::Write;
use std::time::{Duration, Instant};

use super::{Core, Effects};
use crate::exabgp::adj_rib::{self, Intended};
use crate::exabgp::{Answer, encoder};
use crate::model::service::Service;

/// When and how the adj-rib-out is checked.
#[derive(Debug)]
pub(super) struct Verify {
    /// How often; `None`: never.
    pub(super) every: Option<Duration>,
    /// The next query.
    pub(super) at: Option<Instant>,
    /// A query is in flight.
    pub(super) asked: bool,
    /// Routes of services removed (or whose routes changed) since the last
    /// check: meant withdrawn, so advertised ones are repaired.
    pub(super) gone: Vec<Intended>,
}

/// The first check, once the services had time for their first rounds.
const VERIFY_FIRST: Duration = Duration::from_secs(10);
/// The check after a reload.
pub(super) const VERIFY_AFTER_RELOAD: Duration = Duration::from_secs(5);
/// A check that could not be used (the answer was cut, or commands were
/// behind it) is tried again this soon.
const VERIFY_RETRY: Duration = Duration::from_secs(5);

impl Verify {
    /// Remembers the routes of a service that a reload removed (or whose
    /// routes changed) as meant withdrawn, for the next check; only while
    /// checks run, so the list cannot grow without one to empty it.
    pub(super) fn forget(&mut self, service: &Service) {
        if self.every.is_some() {
            self.gone.extend(withdrawn(service));
        }
    }
}

/// Every route of `service`, meant withdrawn (it was removed, or its routes
/// changed).
fn withdrawn(service: &Service) -> Vec<Intended> {
    service
        .prefixes
        .iter()
        .map(|p| Intended {
            neighbors: service.neighbors.clone(),
            prefix: *p,
            path_id: service.path_id,
            announce: None,
        })
        .collect()
}

impl<W: Write> Core<W> {
    /// Checks ExaBGP's adj-rib-out every `every` (the first time
    /// `VERIFY_FIRST` from `now`), repairing any difference from the
    /// intent. Needs acks (the end of the answer is its `done`).
    pub fn verify_every(&mut self, every: Duration, now: Instant) {
        self.verify.every = Some(every);
        self.verify.at = now.checked_add(VERIFY_FIRST.min(every));
    }

    /// The answer to `show adj-rib out extensive`: repairs what differs
    /// from the intent (missing or different announcements, routes meant
    /// withdrawn but advertised), and schedules the next check.
    pub(super) fn verified(&mut self, answer: Answer, now: Instant, fx: &mut Effects) -> anyhow::Result<()> {
        let _ = fx;
        self.verify.asked = false;
        let again = |v: &Verify, d: Duration| v.every.and_then(|e| now.checked_add(d.min(e)));
        if !answer.ok || !answer.complete || answer.behind > 0 {
            log::debug!(
                "adj-rib-out check skipped (ack {}, complete {}, {} commands behind it); again soon",
                if answer.ok { "done" } else { "error" },
                answer.complete,
                answer.behind
            );
            self.verify.at = again(&self.verify, VERIFY_RETRY);
            return Ok(());
        }
        self.verify.at = again(&self.verify, Duration::MAX);
        let advertised = adj_rib::parse(&answer.lines);
        if advertised.is_empty() {
            // No session up (or nothing ever advertised): nothing to compare.
            log::debug!("adj-rib-out check: ExaBGP advertises nothing");
            return Ok(());
        }
        // Old routes meant withdrawn, unless a service owns them now.
        let gone = std::mem::take(&mut self.verify.gone);
        let owned: std::collections::HashSet<&str> =
            self.ids().flat_map(|i| self.rt(i).keys.iter().map(String::as_str)).collect();
        let mut intended: Vec<Intended> = gone
            .into_iter()
            .filter(|w| !owned.contains(encoder::withdraw(&w.neighbors, &w.prefix, w.path_id).as_str()))
            .collect();
        for i in self.ids() {
            let rt = self.rt(i);
            intended.extend(Intended::for_service(&rt.service, rt.shown()));
        }
        let repairs = adj_rib::diff(&intended, &advertised);
        if repairs.is_empty() {
            log::debug!("adj-rib-out check: {} routes as intended", advertised.len());
            return Ok(());
        }
        let shown: Vec<String> = repairs.iter().map(|r| format!("{} ({:?})", r.prefix, r.reason)).collect();
        log::warn!(
            "ExaBGP advertises {} routes otherwise than intended; repairing: {}",
            repairs.len(),
            shown.join(", ")
        );
        for r in repairs {
            self.metrics.record_repair(match r.reason {
                adj_rib::Reason::Missing => "missing",
                adj_rib::Reason::Different => "different",
                adj_rib::Reason::Unexpected => "unexpected",
            });
            // A route's own key, so that a newer state supersedes the repair.
            let key = encoder::withdraw(&[], &r.prefix, None);
            let key = intended
                .iter()
                .find(|w| w.prefix == r.prefix)
                .map_or(key, |w| encoder::withdraw(&w.neighbors, &w.prefix, w.path_id));
            self.writer.send(r.line, Some(key), now)?;
        }
        Ok(())
    }
}
