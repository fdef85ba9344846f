//! The command line: a drop-in for the bundled healthcheck's flags, parsed
//! with clap into raw values ([`Args`], defined here), translated into the
//! one raw form of a service ([`crate::model::raw::RawSpec`], the
//! healthcheck's defaults and conventions applied: `spec.rs`) and validated
//! by the same validator as a JSON service ([`crate::model::validate`]). Every error names the flag and why; all of
//! them are reported at once. What runs with them is [`crate::app`]'s
//! business.

pub mod compat;
pub mod fleet;
pub mod generate;
mod spec;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use log::LevelFilter;

use crate::engine::{self, Options};
use crate::exabgp::AckMode;
use crate::model::origin::Severity;
use crate::model::service::Service;
use crate::model::{duration, validate};

/// Health-checking ExaBGP API process: announces a service's prefixes while its checks pass.
///
/// Run it from ExaBGP's `process` stanza (a drop-in for `python3 -m exabgp healthcheck`), or
/// by hand with --dry-run to see the lines it would send. Durations are seconds (2, 0.5) or
/// humantime forms (250ms, 2s, 1m).
#[derive(Debug, Parser)]
#[command(
    name = "exaprobe",
    version,
    max_term_width = 100,
    args_override_self = true,
    args_conflicts_with_subcommands = true
)]
// The doc comments of the flags are their --help text (clap), where
// `[SERVER]` means optional, not a rustdoc link.
#[allow(rustdoc::broken_intra_doc_links)]
pub struct Args {
    /// A subcommand; without one, exaprobe runs the service the flags (or --config) describe.
    #[command(subcommand)]
    pub command: Option<Sub>,

    /// Prefix to announce (repeatable; IPv4 or IPv6, host bits must be zero).
    #[arg(long = "ip", value_name = "PREFIX", help_heading = "Routes")]
    pub ips: Vec<String>,
    /// Next hop for the announcements: an address or `self`.
    #[arg(short = 'N', long, value_name = "IP|self", default_value = "self", help_heading = "Routes")]
    pub next_hop: String,
    /// Next hop for IPv6 prefixes (`self` only works over an IPv6 BGP session).
    #[arg(long, value_name = "IP|self", help_heading = "Routes")]
    pub next_hop6: Option<String>,
    /// Withdraw the prefixes when DOWN or DISABLED instead of announcing a worse metric.
    #[arg(long, help_heading = "Routes")]
    pub withdraw_on_down: bool,
    /// MED of the first prefix when UP.
    #[arg(long, value_name = "M", default_value_t = 100, help_heading = "Routes")]
    pub up_metric: u32,
    /// MED of the first prefix when DOWN.
    #[arg(long, value_name = "M", default_value_t = 1000, help_heading = "Routes")]
    pub down_metric: u32,
    /// MED of the first prefix when DEGRADED.
    #[arg(long, value_name = "M", default_value_t = 200, help_heading = "Routes")]
    pub degraded_metric: u32,
    /// Communities added to --community when DEGRADED (a "drain" community, say).
    #[arg(long, value_name = "LIST", help_heading = "Routes")]
    pub degraded_community: Option<String>,
    /// AS path when DEGRADED, to prepend ("65001 65001 65001"; overrides --as-path).
    #[arg(long, value_name = "ASNS", help_heading = "Routes")]
    pub degraded_as_path: Option<String>,
    /// MED of the first prefix when DISABLED.
    #[arg(long, value_name = "M", default_value_t = 500, help_heading = "Routes")]
    pub disabled_metric: u32,
    /// Added to the MED for each further prefix (negative lowers it; a MED stays within 0-4294967295).
    #[arg(long, value_name = "M", default_value_t = 1, allow_negative_numbers = true, help_heading = "Routes")]
    pub increase: i64,
    /// Rotate the prefixes so that prefix number N (from 0, modulo their number) gets the base MED.
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true, help_heading = "Routes")]
    pub start_ip: i64,
    /// Announce every address of each --ip network instead of the network (at most 1024).
    #[arg(long, help_heading = "Routes")]
    pub deaggregate_networks: bool,
    /// LOCAL_PREF (a negative one, like the default -1, leaves it out, as in the bundled healthcheck).
    #[arg(long, value_name = "P", allow_negative_numbers = true, help_heading = "Routes")]
    pub local_preference: Option<i64>,
    /// Communities, space separated ("65000:1 no-export").
    #[arg(long, value_name = "LIST", help_heading = "Routes")]
    pub community: Option<String>,
    /// Communities for DOWN and DISABLED, replacing --community there.
    #[arg(long, value_name = "LIST", help_heading = "Routes")]
    pub disabled_community: Option<String>,
    /// Extended communities ("target:65000:1").
    #[arg(long, value_name = "LIST", help_heading = "Routes")]
    pub extended_community: Option<String>,
    /// Large communities ("65000:1:1").
    #[arg(long, value_name = "LIST", help_heading = "Routes")]
    pub large_community: Option<String>,
    /// AS path for every state ("65001 65001").
    #[arg(long, value_name = "ASNS", help_heading = "Routes")]
    pub as_path: Option<String>,
    /// AS path when UP (overrides --as-path).
    #[arg(long, value_name = "ASNS", help_heading = "Routes")]
    pub up_as_path: Option<String>,
    /// AS path when DOWN (overrides --as-path).
    #[arg(long, value_name = "ASNS", help_heading = "Routes")]
    pub down_as_path: Option<String>,
    /// AS path when DISABLED (overrides --as-path).
    #[arg(long, value_name = "ASNS", help_heading = "Routes")]
    pub disabled_as_path: Option<String>,
    /// ADD-PATH path identifier (0: none, as in the bundled healthcheck).
    #[arg(long, value_name = "N", help_heading = "Routes")]
    pub path_id: Option<u32>,
    /// Send only to this neighbor (repeatable; a `*` among them means all).
    #[arg(long, value_name = "IP", help_heading = "Routes")]
    pub neighbor: Vec<String>,

    /// Shell command whose exit status 0 means healthy (run with /bin/sh -c).
    #[arg(short = 'c', long = "cmd", visible_alias = "command", value_name = "SHELL", help_heading = "Checks")]
    pub cmd: Option<String>,
    /// Native TCP check: healthy when a connection to IP:PORT succeeds (repeatable).
    #[arg(long, value_name = "IP:PORT", help_heading = "Checks")]
    pub tcp: Vec<String>,
    /// Native HTTP(S) check: "URL [host=NAME] [status=200-299] [body=TEXT] [ca=FILE] [insecure] …" (repeatable).
    #[arg(long, value_name = "SPEC", help_heading = "Checks")]
    pub http: Vec<String>,
    /// Native DNS check: "[SERVER] NAME [TYPE] [tcp] [rcode=R] [answer=TEXT] [source=IP] …" (repeatable).
    #[arg(long, value_name = "SPEC", help_heading = "Checks")]
    pub dns: Vec<String>,
    /// Native NTP check: "[IP[:PORT]] [max-stratum=N] [max-offset=D] [max-dispersion=D] [max-root-distance=D]
    /// [max-ref-age=D] [source=IP]" (repeatable).
    #[arg(long, value_name = "SPEC", num_args = 0..=1, default_missing_value = "", help_heading = "Checks")]
    pub ntp: Vec<String>,
    /// Monitoring plugin, run without a shell: "PATH ARGS… [timeout=D] [on-fail=degrade]" split on spaces
    /// (\x20 for a space in an argument); exit 0 ok, 1 degraded, 2+ down.
    #[arg(long, value_name = "ARGV", help_heading = "Checks")]
    pub plugin: Vec<String>,
    /// How checks combine: all, any, or a number of checks that must be healthy.
    #[arg(long, value_name = "all|any|N", default_value = "all", help_heading = "Checks")]
    pub require: String,
    /// Maintenance file: while it exists the service is DISABLED and checks are skipped.
    #[arg(long, value_name = "FILE", help_heading = "Checks")]
    pub disable: Option<PathBuf>,
    /// Watch the service's process through this pid file: its exit starts a probe round at once.
    #[arg(long, value_name = "PATH", help_heading = "Events")]
    pub watch_pid_file: Option<PathBuf>,
    /// Watch this listening socket ([udp:]IP:PORT, repeatable): its closing starts a probe round at once.
    #[arg(long, value_name = "[udp:]IP:PORT", help_heading = "Events")]
    pub watch_listen: Vec<String>,
    /// Watch this systemd unit over D-Bus, where a system bus exists.
    #[arg(long, value_name = "UNIT", help_heading = "Events")]
    pub watch_unit: Option<String>,
    /// A failed probe after an event counts like any other (the normal --fall), instead of DOWN at once.
    #[arg(long, help_heading = "Events")]
    pub no_trust_events: bool,

    /// Time between checks in a stable state.
    #[arg(short = 'i', long, value_name = "DURATION", default_value = "5", help_heading = "Timing")]
    pub interval: String,
    /// Time between checks while RISING or FALLING.
    #[arg(short = 'f', long, value_name = "DURATION", default_value = "1", help_heading = "Timing")]
    pub fast_interval: String,
    /// Time a check may take before it counts as failed, at most --interval [default: 5, or --interval
    /// when shorter; 0: --interval].
    #[arg(short = 't', long, value_name = "DURATION", help_heading = "Timing")]
    pub timeout: Option<String>,
    /// Consecutive successes needed to announce.
    #[arg(long, value_name = "N", default_value_t = 3, help_heading = "Timing")]
    pub rise: u32,
    /// Consecutive failures needed to go DOWN.
    #[arg(long, value_name = "N", default_value_t = 3, help_heading = "Timing")]
    pub fall: u32,
    /// Flap dampening (RFC 2439 style, half-life 15m, suppress after about 3 quick flaps, at most 1h).
    #[arg(long, help_heading = "Timing")]
    pub dampening: bool,
    /// How long a drain announces GRACEFUL_SHUTDOWN (65535:0) before it withdraws (default 30s).
    #[arg(long, value_name = "DURATION", help_heading = "Timing")]
    pub drain_duration: Option<String>,
    /// On SIGTERM, drain first (GRACEFUL_SHUTDOWN for --drain-duration), then withdraw and exit.
    #[arg(long, help_heading = "Timing")]
    pub drain_on_shutdown: bool,
    /// Re-send the current state this often (ExaBGP drops identical repeats); 0 never.
    #[arg(long, value_name = "DURATION", default_value = "5m", help_heading = "Timing")]
    pub reassert: String,

    /// Do not wait for ExaBGP's done/error acks (for exabgp.api.ack=false).
    #[arg(short = 'a', long, help_heading = "ExaBGP channel")]
    pub no_ack: bool,
    /// How long to wait for an ack before sending the next command anyway.
    #[arg(long, value_name = "DURATION", default_value = "2s", help_heading = "ExaBGP channel")]
    pub ack_timeout: String,
    /// Serve status/drain/recheck on this Unix socket (off by default in this single-service mode).
    #[arg(long, value_name = "PATH", help_heading = "Operating")]
    pub control_socket: Option<PathBuf>,
    /// Where drains are kept across restarts (default: the control socket's path + ".state").
    #[arg(long, value_name = "FILE", help_heading = "Operating")]
    pub state_file: Option<PathBuf>,
    /// Serve Prometheus metrics on http://ADDR/metrics (loopback advised).
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Operating")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Write the metrics to FILE every 15 s, for node_exporter's textfile collector.
    #[arg(long, value_name = "FILE", help_heading = "Operating")]
    pub metrics_textfile: Option<PathBuf>,
    /// The fleet guard: an etcd client URL of the sites' shared store (repeatable), with --site.
    #[arg(long, value_name = "URL", help_heading = "Fleet guard")]
    pub fleet_etcd: Vec<String>,
    /// This site's name in the fleet (1-64 of A-Z a-z 0-9 . _ -).
    #[arg(long, value_name = "NAME", help_heading = "Fleet guard")]
    pub site: Option<String>,
    /// Withdraw for health only while at least N other sites announce [default: 1].
    #[arg(long, value_name = "N", help_heading = "Fleet guard")]
    pub min_sites: Option<u32>,
    /// Lease time to live: a dead site stops being counted this long after [default: 10s].
    #[arg(long, value_name = "DURATION", help_heading = "Fleet guard")]
    pub fleet_ttl: Option<String>,
    /// The longest a slow store may delay a guarded withdraw [default: 500ms].
    #[arg(long, value_name = "DURATION", help_heading = "Fleet guard")]
    pub fleet_timeout: Option<String>,
    /// etcd key prefix [default: /exaprobe/].
    #[arg(long, value_name = "PREFIX", help_heading = "Fleet guard")]
    pub fleet_prefix: Option<String>,
    /// CA bundle (PEM) of etcd's certificate, for https:// URLs.
    #[arg(long, value_name = "FILE", help_heading = "Fleet guard")]
    pub fleet_ca: Option<PathBuf>,
    /// Client certificate (PEM) towards etcd, with --fleet-key.
    #[arg(long, value_name = "FILE", help_heading = "Fleet guard")]
    pub fleet_cert: Option<PathBuf>,
    /// Client private key (PEM) towards etcd.
    #[arg(long, value_name = "FILE", help_heading = "Fleet guard")]
    pub fleet_key: Option<PathBuf>,
    /// etcd user, with --fleet-password-file.
    #[arg(long, value_name = "USER", help_heading = "Fleet guard")]
    pub fleet_user: Option<String>,
    /// File holding the etcd user's password (its first line).
    #[arg(long, value_name = "FILE", help_heading = "Fleet guard")]
    pub fleet_password_file: Option<PathBuf>,
    /// Standalone: no ExaBGP; print the lines that would be sent, transitions on stderr.
    #[arg(long, help_heading = "ExaBGP channel")]
    pub dry_run: bool,

    /// Name of the service in logs (default: its first prefix).
    #[arg(short = 'n', long, help_heading = "Logging")]
    pub name: Option<String>,
    /// Where logs go: stderr (ExaBGP copies it into its log), syslog (/dev/log) or journald.
    #[arg(long, value_name = "TARGET", default_value = "stderr", help_heading = "Logging")]
    pub log_target: crate::ops::logger::Target,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", default_value = "info", help_heading = "Logging")]
    pub log_level: LevelFilter,
    /// Same as --log-level debug.
    #[arg(short = 'd', long, help_heading = "Logging")]
    pub debug: bool,
    /// Log only warnings and errors.
    #[arg(short = 's', long, help_heading = "Logging")]
    pub silent: bool,
    /// Write the process id to FILE (removed at exit).
    #[arg(short = 'p', long, value_name = "FILE")]
    pub pid: Option<PathBuf>,
    /// Read flags from FILE, one `key = value` or `key` per line (the bundled healthcheck's format).
    #[arg(short = 'F', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Accepted for compatibility: exaprobe always writes only on a change.
    #[arg(long, hide = true)]
    pub debounce: bool,
    /// Accepted for compatibility: exaprobe never touches addresses.
    #[arg(long, hide = true)]
    pub no_ip_setup: bool,
    /// Accepted for compatibility: exaprobe logs to syslog only with --log-target syslog.
    #[arg(long, hide = true)]
    pub no_syslog: bool,

    // Flags of the bundled healthcheck that exaprobe refuses, with a reason.
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub dynamic_ip_setup: bool,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub ip_setup: bool,
    #[arg(long, hide = true, value_name = "LABEL")]
    #[doc(hidden)]
    pub label: Option<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub label_exact_match: bool,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub ip_ifname: Vec<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub sudo: bool,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "daemon")]
    #[doc(hidden)]
    pub syslog_facility: Option<String>,
    /// Run command checks (--cmd, --plugin) as this user when exaprobe runs
    /// as root: a name or a uid, never root; no new privileges
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// The group for --user (default: the user's primary group)
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub execute: Vec<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub up_execute: Vec<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub down_execute: Vec<String>,
    #[arg(long, hide = true)]
    #[doc(hidden)]
    pub disabled_execute: Vec<String>,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Validate and lint a JSON config; print, per service, the exact lines each state sends.
    ///
    /// Exits 0 when the config is valid (warnings allowed), 2 with every error otherwise.
    Check {
        /// The JSON config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// RPKI VRPs (the JSON export of rpki-client or Routinator) to check origin validity against.
        #[arg(long, value_name = "FILE")]
        vrps: Option<PathBuf>,
        /// The origin AS of the announcements (overrides the config's origin_as).
        #[arg(long, value_name = "ASN")]
        origin_as: Option<String>,
    },
    /// Show what a running exaprobe thinks of each service, and why.
    Status {
        /// Print the raw JSON reply.
        #[arg(long)]
        json: bool,
        /// The control socket of the running exaprobe.
        #[arg(long, value_name = "PATH", default_value = crate::ops::control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Drain a service (or all): announce GRACEFUL_SHUTDOWN for a while, then withdraw.
    ///
    /// The drain survives a restart of exaprobe and ends by itself after --for.
    Drain {
        /// The service to drain.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        service: Option<String>,
        /// Drain every service.
        #[arg(long)]
        all: bool,
        /// End the drain after this long (default: until undrain).
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// Why, shown by status.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Drain even when the fleet guard refuses (fewer than min_sites other sites would announce).
        #[arg(long)]
        force: bool,
        /// The control socket of the running exaprobe.
        #[arg(long, value_name = "PATH", default_value = crate::ops::control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// End a drain.
    Undrain {
        /// The service to undrain.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        service: Option<String>,
        /// Undrain every service.
        #[arg(long)]
        all: bool,
        /// The control socket of the running exaprobe.
        #[arg(long, value_name = "PATH", default_value = crate::ops::control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Probe a service now (the result still goes through rise/fall).
    Recheck {
        /// The service.
        service: String,
        /// The control socket of the running exaprobe.
        #[arg(long, value_name = "PATH", default_value = crate::ops::control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// A game day: drain a service that is UP, watch a witness command, undrain after --for.
    ///
    /// Runs the witness (a shell command whose stdout is the answer, e.g.
    /// `dig @198.51.100.53 id.server CH TXT +short`) at --rate before, during
    /// and after the drain, and reports when it first answered from
    /// elsewhere, how many answers were lost, and when the site was back.
    /// Always undrains, also on Ctrl-C or SIGTERM.
    Drill {
        /// The service to drill.
        service: String,
        /// How long the drain lasts.
        #[arg(long = "for", value_name = "DURATION", default_value = "30s")]
        duration: String,
        /// The witness: a shell command; exit 0 with output is an answer, anything else a lost one.
        #[arg(long, value_name = "CMD")]
        witness: Option<String>,
        /// Witness runs per second (0.01 to 100).
        #[arg(long, value_name = "PER-SECOND", default_value_t = 5.0)]
        rate: f64,
        /// How long to watch before the drain (the baseline answer).
        #[arg(long, value_name = "DURATION", default_value = "5s")]
        before: String,
        /// How long to watch after the undrain (default: --before).
        #[arg(long, value_name = "DURATION")]
        after: Option<String>,
        /// A witness run taking longer is killed and counts as lost.
        #[arg(long, value_name = "DURATION", default_value = "1s")]
        witness_timeout: String,
        /// Why, shown by status.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Drain even if the fleet guard refuses (fewer than min_sites other sites announcing).
        #[arg(long)]
        force: bool,
        /// The control socket of the running exaprobe.
        #[arg(long, value_name = "PATH", default_value = crate::ops::control::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Show the fleet guard's store: every service × site, announcing, held, down or drained.
    ///
    /// Reads etcd (the "fleet" of --config, or --fleet-etcd); exits 1 when it cannot.
    Fleet(crate::cli::fleet::FleetArgs),
    /// Print a man page or shell completion script, generated from these flags.
    #[command(hide = true)]
    Generate {
        /// What to print.
        what: crate::cli::generate::Artefact,
    },
}

/// Everything the run needs besides the service.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The service to run.
    pub service: Service,
    /// Engine options.
    pub options: Options,
    /// Log level.
    pub log_level: LevelFilter,
}

impl Args {
    /// Validates the flags into [`Settings`], or every problem found.
    /// Warnings are logged.
    pub fn settings(&self) -> Result<Settings, Vec<String>> {
        let (spec, mut errors) = self.spec();
        let (fleet, mut problems) = match self.raw_fleet() {
            Some(raw) => validate::fleet(&raw),
            None => (None, Vec::new()),
        };
        let fleet_ok = !problems.iter().any(|p| p.severity == Severity::Error);
        let (service, more) = validate::service_in(&spec, fleet.as_ref());
        problems.extend(more);
        for p in problems {
            match p.severity {
                Severity::Error => errors.push(p.to_string()),
                Severity::Warning => log::warn!("{p}"),
            }
        }
        let ack_timeout = match duration::parse(&self.ack_timeout) {
            Ok(d) if d.is_zero() => {
                errors.push("--ack-timeout: must be more than 0".into());
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(format!("--ack-timeout: {e}"));
                None
            }
        };
        let (Some(service), Some(ack_timeout), true, true) = (service, ack_timeout, errors.is_empty(), fleet_ok) else {
            if errors.is_empty() {
                errors.push("internal: a value was missing without an error".into());
            }
            return Err(errors);
        };
        let ack = if self.no_ack { AckMode::NoWait } else { AckMode::Wait(ack_timeout) };
        Ok(Settings {
            service,
            options: Options {
                ack,
                dry_run: self.dry_run,
                read_stdin: !self.dry_run,
                workers: 0,
                control: self.control_settings(),
                metrics: engine::MetricsOptions {
                    listen: self.metrics_listen,
                    textfile: self.metrics_textfile.clone(),
                },
                notify: false,
                fleet,
            },
            log_level: self.level(),
        })
    }

    /// The log level the flags ask for.
    pub fn level(&self) -> LevelFilter {
        if self.debug {
            LevelFilter::Debug
        } else if self.silent {
            LevelFilter::Warn
        } else {
            self.log_level
        }
    }

    fn control_settings(&self) -> Option<crate::ops::control::ControlSettings> {
        let socket = self.control_socket.clone()?;
        let state_file = self.state_file.clone();
        Some(crate::ops::control::ControlSettings { socket, mode: 0o600, group: None, state_file })
    }
}

/// clap's message for `err` without its own `error: ` prefix (the caller
/// adds one per line) and without the usage lines; help and version texts
/// whole.
pub fn clap_error_text(err: &clap::Error) -> String {
    use clap::error::ErrorKind;
    let text = err.render().to_string();
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return text.trim_end().to_string();
    }
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .collect();
    format!("{} (see --help)", lines.join("\n"))
}

/// Expands the command line the bundled healthcheck's way (prefixes,
/// negative numbers, `-sF`, a `-F` file of flags), see [`compat`].
pub fn expand_config(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    compat::expand(args)
}

#[cfg(test)]
mod tests;
