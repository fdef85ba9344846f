//! The one raw form of a service: what the user wrote, as text, each value
//! with its [`Origin`]. Both the command line ([`crate::cli`], including the
//! bundled healthcheck's `-F` files) and a JSON service
//! ([`crate::model::config`], with its `defaults` merged in) are translated
//! into a [`RawSpec`]; [`crate::model::validate::service`] alone turns it
//! into a [`crate::model::service::Service`].
//!
//! The translations only move values and apply the defaults their format
//! documents (the flags' `--down-metric 1000`, JSON's `"on_down":
//! "withdraw"`); every rule about what a value may be lives in the validator.
//! An absent value ([`Field`] with `None`) takes the model's default, which
//! is the JSON config's.

use std::path::PathBuf;

use crate::model::origin::{At, Field, Origin};
use crate::probe::command::ExitCodes;
use crate::probe::dns::DnsBuilder;
use crate::probe::http::HttpBuilder;
use crate::probe::ntp::NtpBuilder;

/// A list of raw values, itself at an origin.
pub type List<T> = At<Vec<At<T>>>;

/// One service as written.
#[derive(Clone, Debug)]
pub struct RawSpec {
    /// The name; `None`: the first prefix.
    pub name: Field<String>,
    /// The prefixes, in metric order (`None`: not given at all).
    pub prefixes: Field<Vec<At<String>>>,
    /// The checks, each at its origin; the list's origin is where "no
    /// checks" is reported.
    pub checks: List<RawCheck>,
    /// `all`, `any` or a number of checks (default all).
    pub require: Field<RawRequire>,
    /// Maintenance files besides those among the checks.
    pub disable_files: Vec<At<PathBuf>>,
    /// Time between checks (default 5s).
    pub interval: Field<String>,
    /// Time between checks while rising or falling (default 1s, at most the interval).
    pub fast_interval: Field<String>,
    /// Time a check may take (default 2s, or half an interval of 2s or less).
    pub timeout: Field<String>,
    /// Successes to go UP (default 3).
    pub rise: Field<u32>,
    /// Failures to go DOWN (default 3).
    pub fall: Field<u32>,
    /// How often the state is re-sent (default 5m; 0 never).
    pub reassert: Field<String>,
    /// `self` or an address (default self).
    pub next_hop: Field<String>,
    /// The next hop of IPv6 prefixes.
    pub next_hop6: Field<String>,
    /// Neighbor addresses (empty: every neighbor).
    pub neighbors: List<String>,
    /// ADD-PATH path identifier.
    pub path_id: Field<u32>,
    /// Added to the MED of each further prefix (default 0).
    pub med_increase: Field<i64>,
    /// Attributes while UP (MED default 100).
    pub up: RawAttributes,
    /// Attributes while DEGRADED (MED default: UP's + 100).
    pub degraded: RawAttributes,
    /// What DOWN does.
    pub down: RawAction,
    /// What DISABLED does.
    pub disabled: RawAction,
    /// A covering prefix announced elsewhere.
    pub covering: Field<String>,
    /// Flap dampening (default on, with the recommended values).
    pub dampening: Field<RawDampening>,
    /// How a drain looks.
    pub drain: RawDrain,
    /// The user command checks run as (when exaprobe is root).
    pub run_as_user: Field<String>,
    /// Their group (default: the user's primary group).
    pub run_as_group: Field<String>,
    /// The service's fleet guard (absent: the top-level `min_sites`).
    pub fleet: Field<RawServiceFleet>,
    /// Event sources ([`crate::model::watch`]).
    pub watch: RawWatch,
}

/// A service's own fleet setting: `"fleet": false` or `{"min_sites": N}`.
#[derive(Clone, Debug)]
pub enum RawServiceFleet {
    /// Not guarded: decided per host, as without a fleet.
    Off,
    /// Guarded, with its own `min_sites` (absent: the top-level one).
    On {
        /// Other sites that must be announcing for a health withdraw.
        min_sites: Field<u32>,
    },
}

/// The process-wide fleet settings as written (the JSON config's top-level
/// `"fleet"`, or the `--fleet-*`, `--site`, `--min-sites` flags).
#[derive(Clone, Debug)]
pub struct RawFleet {
    /// Where the whole setting is (`fleet`, or the first `--fleet-etcd`).
    pub origin: Origin,
    /// etcd client URLs.
    pub etcd: List<String>,
    /// This site's name.
    pub site: Field<String>,
    /// Default `min_sites` (1).
    pub min_sites: Field<u32>,
    /// Lease time to live (10s).
    pub ttl: Field<String>,
    /// The longest a store call may delay a guarded withdraw (500ms).
    pub timeout: Field<String>,
    /// Key prefix (`/exaprobe/`).
    pub prefix: Field<String>,
    /// TLS towards etcd: `ca`, `cert`, `key`.
    pub tls: Option<RawFleetTls>,
    /// etcd authentication: `user`, `password_file`.
    pub auth: Option<RawFleetAuth>,
}

/// TLS towards etcd, as written.
#[derive(Clone, Debug)]
pub struct RawFleetTls {
    /// CA bundle.
    pub ca: Field<PathBuf>,
    /// Client certificate.
    pub cert: Field<PathBuf>,
    /// Client key.
    pub key: Field<PathBuf>,
}

/// etcd authentication, as written.
#[derive(Clone, Debug)]
pub struct RawFleetAuth {
    /// The user.
    pub user: Field<String>,
    /// A file holding the password.
    pub password_file: Field<PathBuf>,
}

/// The watch sources as written (JSON `watch` and `trust_events`, or the
/// `--watch-*` flags).
#[derive(Clone, Debug)]
pub struct RawWatch {
    /// The main process's pid file.
    pub pid_file: Field<PathBuf>,
    /// The main process's pid.
    pub pid: Field<i64>,
    /// Listeners, `IP:PORT` or `udp:IP:PORT`.
    pub listen: List<String>,
    /// A systemd unit.
    pub unit: Field<String>,
    /// Whether an event makes a failed probe definitive (default true).
    pub trust_events: Field<bool>,
}

impl RawWatch {
    /// No watch; each key's origin is `base` + its JSON key, `trust_events`
    /// at `trust`.
    pub fn none(base: &Origin, trust: Origin) -> Self {
        RawWatch {
            pid_file: Field::absent(base.join("pid_file")),
            pid: Field::absent(base.join("pid")),
            listen: At::new(Vec::new(), base.join("listen")),
            unit: Field::absent(base.join("unit")),
            trust_events: Field::absent(trust),
        }
    }
}

/// BGP attributes of one state, with every layer (JSON `defaults`, the
/// base `attributes`) already resolved: each value is the first layer's
/// that sets it, at that layer's origin.
#[derive(Clone, Debug)]
pub struct RawAttributes {
    /// MULTI_EXIT_DISC.
    pub med: Field<u32>,
    /// LOCAL_PREF.
    pub local_preference: Field<u32>,
    /// ORIGIN: igp, egp, incomplete.
    pub origin: Field<String>,
    /// AS_PATH.
    pub as_path: Field<RawAsPath>,
    /// Standard communities.
    pub communities: Field<Vec<At<String>>>,
    /// Extended communities.
    pub extended_communities: Field<Vec<At<String>>>,
    /// Large communities.
    pub large_communities: Field<Vec<At<String>>>,
}

impl RawAttributes {
    /// Attributes that set nothing; each key's origin is `base` + its JSON key.
    pub fn none(base: &Origin) -> Self {
        RawAttributes {
            med: Field::absent(base.join("med")),
            local_preference: Field::absent(base.join("local_preference")),
            origin: Field::absent(base.join("origin")),
            as_path: Field::absent(base.join("as_path")),
            communities: Field::absent(base.join("communities")),
            extended_communities: Field::absent(base.join("extended_communities")),
            large_communities: Field::absent(base.join("large_communities")),
        }
    }
}

/// An AS path: a string of numbers, or a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawAsPath {
    /// `"64500 64500"`.
    Text(String),
    /// `[64500, 64500]`.
    List(Vec<u32>),
}

/// What a state does with the routes.
#[derive(Clone, Debug)]
#[expect(clippy::large_enum_variant, reason = "built once per service at startup: size does not matter")]
pub enum RawAction {
    /// Withdraw them.
    Withdraw,
    /// Announce them with these attributes (MED default 100).
    Announce(RawAttributes),
}

/// `all`, `any`, a number, or something else (refused by the validator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawRequire {
    /// Every check.
    All,
    /// One check.
    Any,
    /// This many checks.
    AtLeast(u64),
    /// Not a requirement.
    Other(String),
}

/// Flap dampening.
#[derive(Clone, Debug, PartialEq)]
#[expect(clippy::large_enum_variant, reason = "built once per service at startup: size does not matter")]
pub enum RawDampening {
    /// No dampening.
    Off,
    /// Dampening; absent values take the recommended ones.
    On {
        /// Time for the penalty to halve.
        half_life: Field<String>,
        /// Penalty per flap.
        penalty: Field<f64>,
        /// Suppress above this.
        suppress: Field<f64>,
        /// Release below this.
        reuse: Field<f64>,
        /// Longest suppression.
        max_suppress: Field<String>,
    },
}

/// A drain: the UP attributes plus these, for `duration`, then a withdraw.
#[derive(Clone, Debug)]
pub struct RawDrain {
    /// Communities added (default GRACEFUL_SHUTDOWN, 65535:0).
    pub communities: Field<Vec<At<String>>>,
    /// The MED, when not UP's.
    pub med: Field<u32>,
    /// The AS path, when not UP's.
    pub as_path: Field<RawAsPath>,
    /// How long the drain stage lasts (default 30s).
    pub duration: Field<String>,
    /// Drain on SIGTERM before exiting.
    pub on_shutdown: bool,
}

/// One check as written.
#[derive(Clone, Debug)]
pub enum RawCheck {
    /// A probe.
    Probe(Box<RawProbeCheck>),
    /// A maintenance file (JSON `{"type": "file"}`).
    File(At<PathBuf>),
}

/// A probe with the settings every probe takes.
#[derive(Clone, Debug)]
pub struct RawProbeCheck {
    /// The probe.
    pub probe: RawProbe,
    /// Where each of the probe's own settings was written.
    pub keys: ProbeKeys,
    /// Its own timeout (at most the interval).
    pub timeout: Field<String>,
    /// Its own rise threshold.
    pub rise: Field<u32>,
    /// Its own fall threshold.
    pub fall: Field<u32>,
    /// `down` (default) or `degrade`.
    pub on_fail: Field<String>,
}

/// The probe part of a check.
#[derive(Clone, Debug)]
pub enum RawProbe {
    /// The flag form of a probe (`--http "URL status=200"`), whose syntax the
    /// probe's own parser owns.
    Words(ProbeKind, String),
    /// A TCP probe.
    Tcp {
        /// `IP:PORT`.
        address: String,
        /// Bytes to send.
        send: Option<String>,
        /// Bytes to expect.
        expect: Option<String>,
    },
    /// An HTTP probe's settings.
    Http(HttpBuilder),
    /// A DNS probe's settings.
    Dns(DnsBuilder),
    /// An NTP probe's settings.
    Ntp(NtpBuilder),
    /// A command: argv or shell (exactly one).
    Command {
        /// Program and arguments, run without a shell.
        argv: Option<Vec<String>>,
        /// A command line for /bin/sh -c.
        shell: Option<String>,
        /// What the exit codes mean.
        exit_codes: ExitCodes,
    },
}

/// The probes with a flag form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// `--tcp`.
    Tcp,
    /// `--http`.
    Http,
    /// `--dns`.
    Dns,
    /// `--ntp`.
    Ntp,
}

/// Where a probe's errors go: each error of a probe names its setting by
/// its flag-form key ([`crate::probe::SpecError::key`]).
#[derive(Clone, Debug)]
pub enum ProbeKeys {
    /// All at one flag. `keep_key`: the message keeps the key
    /// (`--http: body-regex: …`), as the flag's value has several.
    Flag {
        /// The flag.
        flag: &'static str,
        /// Whether the message names the key.
        keep_key: bool,
    },
    /// At the check's JSON path, plus the JSON key of the flag-form key.
    Json {
        /// The check's path.
        check: Origin,
        /// Flag-form key to JSON key.
        keys: &'static [(&'static str, &'static str)],
    },
}

impl ProbeKeys {
    /// Where a probe error about `key` goes, and whether its message should
    /// name the key.
    pub fn locate(&self, key: Option<&str>) -> (Origin, bool) {
        match self {
            ProbeKeys::Flag { flag, keep_key } => (Origin::Flag(flag), *keep_key),
            ProbeKeys::Json { check, keys } => match key.and_then(|k| keys.iter().find(|(flag, _)| *flag == k)) {
                Some((_, json)) => (check.join(json), false),
                None => (check.clone(), true),
            },
        }
    }
}
