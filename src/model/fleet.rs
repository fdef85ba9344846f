//! The validated fleet settings: where the sites' shared store (etcd) is,
//! which site this host is, and how many sites must keep announcing.
//!
//! Built only by the validator (from `"fleet"` in the JSON config or the
//! `--fleet-etcd`/`--site`/`--min-sites` flags); the fleet client
//! ([`crate::fleet`]) and the engine see only these types.

use std::path::PathBuf;
use std::time::Duration;

/// The process-wide fleet settings (the JSON config's top-level `"fleet"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetSettings {
    /// etcd client URLs (`http://` or `https://`), tried in order; never empty.
    pub endpoints: Vec<String>,
    /// This site's name: a key segment, `[A-Za-z0-9._-]{1,64}`.
    pub site: String,
    /// Key prefix, ending in `/` (default `/exaprobe/`); a service's keys are
    /// `<prefix><service>/<site>`.
    pub prefix: String,
    /// Lease time to live: a site that stops keeping its lease alive stops
    /// being counted this long after.
    pub ttl: Duration,
    /// The longest a store call may delay a guarded withdraw before the
    /// local rule applies.
    pub timeout: Duration,
    /// Default `min_sites` for guarded services.
    pub min_sites: u32,
    /// TLS towards etcd (for `https://` endpoints).
    pub tls: Option<FleetTls>,
    /// etcd user authentication.
    pub auth: Option<FleetAuth>,
}

/// TLS settings towards etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetTls {
    /// CA bundle (PEM) that signs etcd's certificate; `None`: the system roots.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), with `key`.
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), with `cert`.
    pub key: Option<PathBuf>,
}

/// etcd user authentication (`/v3/auth/authenticate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetAuth {
    /// The etcd user.
    pub user: String,
    /// The password, read from a file at validation (never from the command line).
    pub password: String,
}

/// A service's guard: how many *other* sites must be announcing for this
/// site to withdraw it for health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceGuard {
    /// The service's `min_sites` (its own `"fleet": {"min_sites": N}`, else
    /// the top-level one).
    pub min_sites: u32,
}
