//! What the fleet guard tells the operator: the typed log events of
//! asking, holding, releasing and deciding locally, and their wording (one
//! variant of [`crate::engine::events::LogEvent`], rendered by the logger like every other event).

use std::fmt;

use crate::core::fsm::Advert;

/// What the guard tells the operator (one variant of
/// [`crate::engine::events::LogEvent`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FleetEvent {
    /// The store became reachable or stopped being so.
    Store {
        /// Reachable, with a live lease.
        connected: bool,
        /// Why.
        detail: String,
    },
    /// A health withdraw waits for the store's answer.
    Asking {
        /// The service.
        service: String,
        /// Other sites that must announce.
        min_sites: u32,
    },
    /// Held: withdrawing would leave too few sites announcing (logged once
    /// per hold, not on every re-ask).
    Held {
        /// The service.
        service: String,
        /// Other sites announcing.
        others: u32,
        /// Sites with live entries, this one included.
        sites: u32,
    },
    /// The store granted the withdraw.
    Granted {
        /// The service.
        service: String,
        /// Whether it was held before.
        was_held: bool,
    },
    /// Decided locally (store unreachable, lease lost, no answer in time).
    Local {
        /// The service.
        service: String,
        /// Why.
        why: String,
    },
    /// The guard let go of a held service: it is healthy again, or the
    /// operator or a maintenance file took over.
    Released {
        /// The service.
        service: String,
        /// The state it goes to.
        to: Advert,
    },
    /// The maintenance file withdrew a service the guard would have held.
    MaintenanceOverride {
        /// The service.
        service: String,
        /// Other sites announcing, when known.
        others: Option<u32>,
        /// Sites with live entries, when known.
        sites: Option<u32>,
    },
    /// A drain was refused by the guard.
    DrainRefused {
        /// The service.
        service: String,
        /// Other sites announcing.
        others: u32,
        /// Sites with live entries.
        sites: u32,
    },
}

impl FleetEvent {
    /// The level it is logged at.
    pub fn level(&self) -> log::Level {
        match self {
            FleetEvent::Store { connected: false, .. }
            | FleetEvent::Held { .. }
            | FleetEvent::Local { .. }
            | FleetEvent::MaintenanceOverride { .. }
            | FleetEvent::DrainRefused { .. } => log::Level::Warn,
            _ => log::Level::Info,
        }
    }
}

impl fmt::Display for FleetEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetEvent::Store { connected: true, detail } => write!(f, "fleet store connected ({detail})"),
            FleetEvent::Store { connected: false, detail } => {
                write!(f, "fleet store not connected ({detail}): every service decides locally")
            }
            FleetEvent::Asking { service, min_sites } => {
                write!(f, "{service}: asking the fleet whether {min_sites} other site(s) announce before withdrawing")
            }
            FleetEvent::Held { service, others, sites } => {
                write!(f, "{service}: held: withdrawing would leave {others} of {sites} sites announcing")
            }
            FleetEvent::Granted { service, was_held: true } => {
                write!(f, "{service}: released: enough other sites announce; withdrawing")
            }
            FleetEvent::Granted { service, was_held: false } => {
                write!(f, "{service}: the fleet agrees: withdrawing")
            }
            FleetEvent::Local { service, why } => write!(f, "{service}: decided locally ({why}): withdrawing"),
            FleetEvent::Released { service, to } => write!(f, "{service}: no longer held: {to}"),
            FleetEvent::MaintenanceOverride { service, others, sites } => {
                write!(f, "{service}: the maintenance file overrides the fleet guard: withdrawing")?;
                if let (Some(o), Some(s)) = (others, sites) {
                    write!(f, " leaves {o} of {s} sites announcing")?;
                }
                Ok(())
            }
            FleetEvent::DrainRefused { service, others, sites } => write!(
                f,
                "{service}: drain refused: withdrawing would leave {others} of {sites} sites announcing (--force drains anyway)"
            ),
        }
    }
}
