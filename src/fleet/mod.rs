//! The fleet client: this site's view of, and vote in, the sites' shared
//! store (etcd, through its JSON gateway over HTTP).
//!
//! It owns everything that talks to etcd: the lease and its keep-alive, the
//! per-service keys (`<prefix><service>/<site>`), the guarded-withdraw
//! transaction, the watch, and the read-only view behind `exaprobe fleet`.
//! It runs on threads of its own and never blocks the engine: every request
//! is a message, every answer a [`Notice`] passed to the callback given to
//! [`Fleet::start`] (the engine turns it into one of its events).
//!
//! The types and signatures below are the contract between the store side
//! (this folder) and the engine side (the guard in the core):
//! - `gateway`: etcd's v3 JSON gateway over blocking HTTP (ureq);
//! - `client`: the threads behind [`Fleet`] (lease, publishing, the
//!   guarded withdraw, the watch, the deadlines);
//! - [`view`]: the keys and values, and [`view()`] for `exaprobe fleet`.
//!
//! The guard's promise: with a healthy store, a [`Verdict::Withdraw`] is
//! given only when, at one etcd revision, at least `min_sites` other sites
//! with live leases announce the service, and this site's entry is marked
//! withdrawn at that same revision (a transaction that fails when any key of
//! the service changed, appeared or vanished since the read). Two sites
//! asking at once are thus serialized by etcd: the second one sees the
//! first one's withdrawal.

use std::time::SystemTime;

use crate::model::fleet::FleetSettings;

mod client;
mod gateway;
mod view;

/// The most keys [`view()`] reads (every service × site).
pub const VIEW_KEYS: usize = view::VIEW_KEYS;

/// The longest reason published (longer ones are cut).
pub const REASON_MAX: usize = view::REASON_MAX;

/// The most sites one service may have: beyond, the guard answers
/// [`Verdict::Local`] (its transaction compares every counted site, and etcd
/// allows 128 operations per transaction).
pub const SITES_MAX: usize = client::SITES_MAX;

/// The age of an entry (from its `since` to now).
pub fn age(entry: &Entry) -> std::time::Duration {
    view::age(entry)
}

/// What this site publishes for one service (the key's value, as JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The route is announced from this site and the others may count on
    /// it (UP, DEGRADED, HELD). A drain's GRACEFUL_SHUTDOWN stage still
    /// announces but is published as not announcing: the site is leaving,
    /// and a site failing meanwhile must not withdraw on its account.
    pub announcing: bool,
    /// Announced only because the guard holds it.
    pub held: bool,
    /// The service's state as `status` shows it (`UP`, `DOWN`, `HELD`,
    /// `DRAINED`, `DISABLED`, …).
    pub state: String,
    /// Since when it is in that state.
    pub since: SystemTime,
    /// Why (the probe's reason, the drain's reason, …); may be empty.
    pub reason: String,
}

/// The answer to [`Fleet::ask_withdraw`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Enough other sites announce: withdraw. The store already says this
    /// site is not announcing (the transaction succeeded).
    Withdraw,
    /// Withdrawing would leave too few sites announcing: keep announcing.
    Hold {
        /// Other sites with live leases announcing the service.
        others_announcing: u32,
        /// Sites with live entries for the service, this one included.
        sites: u32,
    },
    /// The store could not be asked (unreachable, lease lost, timeout):
    /// decide locally, as without a fleet.
    Local {
        /// Why, for the log and `status`.
        why: String,
    },
}

/// What the fleet client tells the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The answer to the [`Fleet::ask_withdraw`] with this ticket.
    Verdict {
        /// The service asked about.
        service: String,
        /// The ticket given with the question.
        ticket: u64,
        /// The answer.
        verdict: Verdict,
    },
    /// Another site's entry for this service changed (etcd watch): a held
    /// service should ask again.
    Changed {
        /// The service.
        service: String,
    },
    /// The store became reachable (with a live lease) or stopped being so.
    Store {
        /// Reachable, with a live lease.
        connected: bool,
        /// Why, for the log and `status`.
        detail: String,
    },
}

/// One row of the fleet view (`exaprobe fleet`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The service.
    pub service: String,
    /// The site.
    pub site: String,
    /// Its published entry.
    pub entry: Entry,
}

/// A running fleet client (its threads stop when it is dropped or stopped).
pub struct Fleet {
    client: client::Client,
}

impl Fleet {
    /// Starts the client for these services; `notify` is called from the
    /// client's threads and must not block.
    ///
    /// The first [`Notice::Store`] comes once the lease is granted (or
    /// could not be); `Changed` notices come only for these services (for
    /// every service when the list is empty).
    pub fn start(settings: FleetSettings, services: Vec<String>, notify: Box<dyn Fn(Notice) + Send + Sync>) -> Fleet {
        Fleet { client: client::Client::start(settings, services, notify) }
    }

    /// Publishes this site's entry for a service (non-blocking; the newest
    /// entry per service wins when the store is slow).
    pub fn publish(&self, service: &str, entry: Entry) {
        self.client.publish(service, entry);
    }

    /// Asks whether this site may withdraw `service` for health, needing at
    /// least `min_sites` other sites announcing; on success the store marks
    /// this site's entry `withdrawn` in the same transaction. Non-blocking:
    /// answered by one [`Notice::Verdict`] with `ticket`, at the latest after
    /// the settings' timeout (then [`Verdict::Local`]).
    pub fn ask_withdraw(&self, service: &str, ticket: u64, min_sites: u32, withdrawn: Entry) {
        self.client.ask_withdraw(service, ticket, min_sites, withdrawn);
    }

    /// Revokes the lease (this site's keys vanish at once), for a clean
    /// shutdown; bounded by the settings' timeout.
    ///
    /// Dropping a `Fleet` without `stop` stops its threads but leaves the
    /// lease to expire after its ttl, as when the process dies.
    pub fn stop(self) {
        self.client.stop();
    }
}

/// Reads every service × site entry under the prefix (for `exaprobe fleet`);
/// blocking, bounded by the settings' timeout.
///
/// Every key exaprobe writes is bound to its site's lease: a site whose
/// lease expired has no row (there are no stale entries to age out).
pub fn view(settings: &FleetSettings) -> anyhow::Result<Vec<Row>> {
    view::view(settings)
}
