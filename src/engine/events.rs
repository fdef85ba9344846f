//! The engine's log events: one typed enum for everything the engine tells
//! the operator, rendered in one place ([`LogEvent::log`]).
//!
//! The pure core ([`super::core`]) returns these instead of logging, so the
//! replay tests see exactly what an operator would read, and the wording of
//! a transition lives here only.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::core::fsm::Advert;
use crate::model::duration;

/// Something the engine did or saw that is worth a log line.
#[derive(Clone, Debug, PartialEq)]
pub enum LogEvent {
    /// A watch saw something happen to a service (issue 13).
    Watch {
        /// The service.
        service: String,
        /// What happened (`process 1234 exited`).
        what: String,
        /// What the core does about it.
        action: &'static str,
    },
    /// A service's asserted state changed.
    Transition {
        /// The service.
        service: String,
        /// The state before (`None`: INIT).
        from: Option<Advert>,
        /// The state now.
        to: Advert,
        /// Why.
        reason: String,
    },
    /// The routes of a service were told to ExaBGP.
    Routes {
        /// The service.
        service: String,
        /// The state asserted.
        advert: Advert,
        /// True for announcements, false for withdraws.
        announce: bool,
        /// Its prefixes.
        prefixes: Vec<String>,
    },
    /// One check's state machine moved (or, at debug level, stayed).
    Check {
        /// The service.
        service: String,
        /// The check, as configured.
        check: String,
        /// The state before.
        from: String,
        /// The state now.
        to: String,
        /// The probe result that moved it.
        outcome: String,
    },
    /// A probe finished (debug).
    Probe {
        /// The service.
        service: String,
        /// The check.
        check: String,
        /// What it found.
        outcome: String,
        /// How long it took.
        elapsed: Duration,
    },
    /// An operator drained a service.
    Drained {
        /// The service.
        service: String,
        /// Who.
        by: String,
        /// Why (may be empty).
        reason: String,
        /// For how long, when not forever.
        length: Option<Duration>,
    },
    /// A drain from the state file was applied at start.
    DrainRestored {
        /// The service.
        service: String,
        /// The state file.
        path: PathBuf,
    },
    /// A drain ended by itself.
    DrainExpired {
        /// The service.
        service: String,
    },
    /// The current announcements were written again.
    Reasserted {
        /// The service.
        service: String,
        /// Its state.
        advert: Advert,
    },
    /// A reload applied a new config.
    Reloaded {
        /// Services left as they were.
        kept: usize,
        /// Services whose settings changed.
        changed: usize,
        /// New services.
        added: usize,
        /// Services no longer configured.
        removed: usize,
    },
    /// A service left the config.
    Removed {
        /// The service.
        service: String,
    },
    /// Draining before exit.
    ShutdownDrain {
        /// The service.
        service: String,
    },
    /// The fleet guard ([`crate::engine::core::FleetEvent`]).
    Fleet(crate::engine::core::FleetEvent),
}

impl LogEvent {
    /// The level the event is logged at.
    pub fn level(&self) -> log::Level {
        match self {
            LogEvent::Check { from, to, .. } if from == to => log::Level::Debug,
            LogEvent::Probe { .. } | LogEvent::Reasserted { .. } => log::Level::Debug,
            LogEvent::Fleet(e) => e.level(),
            _ => log::Level::Info,
        }
    }

    /// Logs the event.
    pub fn log(&self) {
        log::log!(self.level(), "{self}");
    }
}

impl fmt::Display for LogEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogEvent::Watch { service, what, action } => write!(f, "{service}: event: {what}; {action}"),
            LogEvent::Transition { service, from, to, reason } => {
                let from = from.map_or("INIT", Advert::name);
                write!(f, "{service}: service {from} -> {to}: {reason}")
            }
            LogEvent::Routes { service, advert, announce, prefixes } => {
                let verb = if *announce { "announcing" } else { "withdrawing" };
                write!(f, "{service}: {advert}: {verb} {}", prefixes.join(" "))
            }
            LogEvent::Check { service, check, from, to, outcome } if from == to => {
                write!(f, "{service}: {check}: still {to}: {outcome}")
            }
            LogEvent::Check { service, check, from, to, outcome } => {
                write!(f, "{service}: {check}: {from} -> {to}: {outcome}")
            }
            LogEvent::Probe { service, check, outcome, elapsed } => {
                write!(f, "{service}: {check} -> {outcome} in {}", duration::show(*elapsed))
            }
            LogEvent::Drained { service, by, reason, length } => {
                write!(f, "{service}: drained by {by}")?;
                if !reason.is_empty() {
                    write!(f, " ({reason})")?;
                }
                if let Some(d) = length {
                    write!(f, " for {}", duration::show(*d))?;
                }
                Ok(())
            }
            LogEvent::DrainRestored { service, path } => write!(f, "{service}: drain restored from {}", path.display()),
            LogEvent::DrainExpired { service } => write!(f, "{service}: drain expired"),
            LogEvent::Reasserted { service, advert } => write!(f, "{service}: re-asserting {advert}"),
            LogEvent::Reloaded { kept, changed, added, removed } => write!(
                f,
                "SIGHUP: config reloaded: {kept} unchanged, {changed} changed, {added} added, {removed} removed"
            ),
            LogEvent::Removed { service } => write!(f, "{service}: removed by reload; withdrawing"),
            LogEvent::ShutdownDrain { service } => write!(f, "{service}: draining before exit"),
            LogEvent::Fleet(e) => e.fmt(f),
        }
    }
}
