//! Translation of the parsed flags ([`Args`]) into the one raw form: the
//! service ([`RawSpec`], with the bundled healthcheck's defaults and
//! conventions applied) and the fleet ([`RawFleet`]), every value tagged
//! with the flag it came from; and the refusal of the healthcheck's flags
//! that exaprobe does not support.

use std::time::Duration;

use super::Args;
use crate::model::bgp::Prefix;
use crate::model::duration;
use crate::model::origin::{At, Field, Origin};
use crate::model::raw::{
    ProbeKeys, ProbeKind, RawAction, RawAsPath, RawAttributes, RawCheck, RawDampening, RawDrain, RawFleet,
    RawFleetAuth, RawFleetTls, RawProbe, RawProbeCheck, RawRequire, RawSpec, RawWatch,
};
use crate::probe::command::ExitCodes;

/// Most host routes `--deaggregate-networks` may expand one prefix into.
const DEAGGREGATE_MAX: usize = 1024;

/// The flag behind a check flag's `timeout=` or `on-fail=` option, for
/// messages (`--tcp timeout=: must be more than 0`).
fn option_flag(flag: &'static str, option: &str) -> &'static str {
    match (flag, option) {
        ("--tcp", "timeout") => "--tcp timeout=",
        ("--tcp", _) => "--tcp on-fail=",
        ("--http", "timeout") => "--http timeout=",
        ("--http", _) => "--http on-fail=",
        ("--dns", "timeout") => "--dns timeout=",
        ("--dns", _) => "--dns on-fail=",
        ("--ntp", "timeout") => "--ntp timeout=",
        _ => "--ntp on-fail=",
    }
}

/// A value given by a flag (or its default).
fn given<T>(value: T, flag: &'static str) -> Field<T> {
    Field::given(value, Origin::Flag(flag))
}

/// A value a flag may give.
fn maybe<T>(value: Option<T>, flag: &'static str) -> Field<T> {
    At::new(value, Origin::Flag(flag))
}

/// The items of a list flag (`"65000:1 no-export"`, `"[ 65000:1, 65000:2 ]"`).
fn words(s: &str, flag: &'static str) -> Vec<At<String>> {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(|c: char| c.is_ascii_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .map(|t| At::new(t.to_string(), Origin::Flag(flag)))
        .collect()
}

/// Splits the options every check flag takes (`timeout=DURATION`,
/// `on-fail=down|degrade`) from the probe's own words.
fn check_spec(flag: &'static str, kind: ProbeKind, spec: &str) -> RawProbeCheck {
    let mut timeout = None;
    let mut on_fail = None;
    let mut rest = Vec::new();
    for word in spec.split_whitespace() {
        if let Some(t) = word.strip_prefix("timeout=") {
            timeout = Some(t.to_string());
        } else if let Some(f) = word.strip_prefix("on-fail=") {
            on_fail = Some(f.to_string());
        } else {
            rest.push(word);
        }
    }
    RawProbeCheck {
        probe: RawProbe::Words(kind, rest.join(" ")),
        keys: ProbeKeys::Flag { flag, keep_key: true },
        timeout: maybe(timeout, option_flag(flag, "timeout")),
        rise: maybe(None, flag),
        fall: maybe(None, flag),
        on_fail: maybe(on_fail, option_flag(flag, "on-fail")),
    }
}

/// A command check of `--cmd` or `--plugin`.
fn command_check(
    flag: &'static str,
    argv: Option<Vec<String>>,
    shell: Option<String>,
    exit_codes: ExitCodes,
) -> RawProbeCheck {
    RawProbeCheck {
        probe: RawProbe::Command { argv, shell, exit_codes },
        keys: ProbeKeys::Flag { flag, keep_key: false },
        timeout: maybe(None, flag),
        rise: maybe(None, flag),
        fall: maybe(None, flag),
        on_fail: maybe(None, flag),
    }
}

impl Args {
    /// The fleet the flags describe, in the one raw form; `None` when no
    /// fleet flag is given.
    pub fn raw_fleet(&self) -> Option<RawFleet> {
        let any = !self.fleet_etcd.is_empty()
            || self.site.is_some()
            || self.min_sites.is_some()
            || self.fleet_ttl.is_some()
            || self.fleet_timeout.is_some()
            || self.fleet_prefix.is_some()
            || self.fleet_ca.is_some()
            || self.fleet_cert.is_some()
            || self.fleet_key.is_some()
            || self.fleet_user.is_some()
            || self.fleet_password_file.is_some();
        if !any {
            return None;
        }
        let etcd = self.fleet_etcd.iter().map(|u| At::new(u.clone(), Origin::Flag("--fleet-etcd"))).collect();
        let tls =
            (self.fleet_ca.is_some() || self.fleet_cert.is_some() || self.fleet_key.is_some()).then(|| RawFleetTls {
                ca: maybe(self.fleet_ca.clone(), "--fleet-ca"),
                cert: maybe(self.fleet_cert.clone(), "--fleet-cert"),
                key: maybe(self.fleet_key.clone(), "--fleet-key"),
            });
        let auth = (self.fleet_user.is_some() || self.fleet_password_file.is_some()).then(|| RawFleetAuth {
            user: maybe(self.fleet_user.clone(), "--fleet-user"),
            password_file: maybe(self.fleet_password_file.clone(), "--fleet-password-file"),
        });
        Some(RawFleet {
            origin: Origin::Flag("--fleet-etcd"),
            etcd: At::new(etcd, Origin::Flag("--fleet-etcd")),
            site: maybe(self.site.clone(), "--site"),
            min_sites: maybe(self.min_sites, "--min-sites"),
            ttl: maybe(self.fleet_ttl.clone(), "--fleet-ttl"),
            timeout: maybe(self.fleet_timeout.clone(), "--fleet-timeout"),
            prefix: maybe(self.fleet_prefix.clone(), "--fleet-prefix"),
            tls,
            auth,
        })
    }

    /// The service the flags describe, in the one raw form (with the
    /// bundled healthcheck's defaults and conventions applied), and the
    /// errors of flags that have no place in it.
    pub fn spec(&self) -> (RawSpec, Vec<String>) {
        let mut e = Vec::new();
        self.refuse_unsupported(&mut e);

        let prefixes = self.raw_prefixes(&mut e);
        // A `*` anywhere means every neighbor (the healthcheck 5.0's rule).
        let all = self.neighbor.iter().any(|n| n.trim() == "*");
        let neighbors =
            self.neighbor.iter().filter(|_| !all).map(|n| At::new(n.trim().to_string(), Origin::Flag("--neighbor")));
        let (up, degraded, down, disabled) = self.raw_states(&mut e);
        let checks = self.raw_checks();
        let require = match self.require.as_str() {
            "all" => RawRequire::All,
            "any" => RawRequire::Any,
            n => n.parse::<u64>().map_or_else(|_| RawRequire::Other(n.to_string()), RawRequire::AtLeast),
        };
        // A timeout is at most the interval. The bundled healthcheck's
        // default of 5 s is cut to a shorter interval (it accepts
        // `--interval 1` alone), and its --timeout 0 (no timeout) is the
        // longest a timeout may be: the interval.
        let interval = duration::parse(&self.interval).ok().filter(|i| !i.is_zero());
        let timeout = match self.timeout.as_deref() {
            Some(t) if duration::parse(t) != Ok(Duration::ZERO) => t.to_string(),
            Some(_) if interval.is_some() => self.interval.clone(),
            None if interval.is_some_and(|i| i < Duration::from_secs(5)) => self.interval.clone(),
            _ => "5".to_string(),
        };
        let dampening = if self.dampening {
            let (d, n) = (|| maybe(None, "--dampening"), || maybe(None, "--dampening"));
            RawDampening::On { half_life: d(), penalty: n(), suppress: n(), reuse: n(), max_suppress: d() }
        } else {
            RawDampening::Off
        };
        let spec = RawSpec {
            name: maybe(self.name.clone(), "--name"),
            prefixes: given(prefixes, "--ip"),
            checks: At::new(checks, Origin::Flag("--cmd/--tcp/--http/--dns/--ntp/--plugin")),
            require: given(require, "--require"),
            disable_files: self.disable.iter().map(|d| At::new(d.clone(), Origin::Flag("--disable"))).collect(),
            interval: given(self.interval.clone(), "--interval"),
            fast_interval: given(self.fast_interval.clone(), "--fast-interval"),
            timeout: given(timeout, "--timeout"),
            rise: given(self.rise, "--rise"),
            fall: given(self.fall, "--fall"),
            reassert: given(self.reassert.clone(), "--reassert"),
            next_hop: given(self.next_hop.clone(), "--next-hop"),
            next_hop6: maybe(self.next_hop6.clone(), "--next-hop6"),
            neighbors: At::new(neighbors.collect(), Origin::Flag("--neighbor")),
            path_id: maybe(self.path_id.filter(|p| *p != 0), "--path-id"),
            med_increase: given(self.increase, "--increase"),
            up,
            degraded,
            down,
            disabled,
            covering: maybe(None, "--ip"),
            dampening: given(dampening, "--dampening"),
            drain: RawDrain {
                communities: maybe(None, "--drain-duration"),
                med: maybe(None, "--drain-duration"),
                as_path: maybe(None, "--drain-duration"),
                duration: maybe(self.drain_duration.clone(), "--drain-duration"),
                on_shutdown: self.drain_on_shutdown,
            },
            run_as_user: maybe(self.user.clone(), "--user"),
            run_as_group: maybe(self.group.clone(), "--group"),
            fleet: maybe(None, "--min-sites"),
            watch: RawWatch {
                pid_file: maybe(self.watch_pid_file.clone(), "--watch-pid-file"),
                pid: maybe(None, "--watch-pid-file"),
                listen: At::new(
                    self.watch_listen.iter().map(|l| At::new(l.clone(), Origin::Flag("--watch-listen"))).collect(),
                    Origin::Flag("--watch-listen"),
                ),
                unit: maybe(self.watch_unit.clone(), "--watch-unit"),
                trust_events: given(!self.no_trust_events, "--no-trust-events"),
            },
        };
        (spec, e)
    }

    /// The prefixes as the healthcheck's flags give them: each --ip, or its
    /// host addresses with --deaggregate-networks, from --start-ip on.
    fn raw_prefixes(&self, e: &mut Vec<String>) -> Vec<At<String>> {
        let mut prefixes = Vec::new();
        for ip in &self.ips {
            match ip.parse::<Prefix>() {
                Ok(p) if self.deaggregate_networks => match every_address(&p, DEAGGREGATE_MAX) {
                    Some(hosts) => prefixes.extend(hosts.into_iter().map(|h| At::new(h, Origin::Flag("--ip")))),
                    None => e.push(format!("--deaggregate-networks: {p} has more than {DEAGGREGATE_MAX} addresses")),
                },
                // The validator reports the bad ones.
                _ => prefixes.push(At::new(ip.clone(), Origin::Flag("--ip"))),
            }
        }
        // The healthcheck rotates a deque by -start_ip: modulo the number
        // of prefixes, a negative one counting from the end.
        if let Ok(n) = i64::try_from(prefixes.len())
            && n > 0
        {
            prefixes.rotate_left(usize::try_from(self.start_ip.rem_euclid(n)).unwrap_or(0));
        }
        prefixes
    }

    /// UP, DEGRADED, DOWN and DISABLED as the healthcheck's flags describe
    /// them: one base (--community, --local-preference, …) with per-state
    /// metrics, AS paths and communities.
    fn raw_states(&self, e: &mut Vec<String>) -> (RawAttributes, RawAttributes, RawAction, RawAction) {
        // The healthcheck leaves a negative one out.
        let local_preference = match self.local_preference {
            None => None,
            Some(v) if v < 0 => None,
            Some(v) => match u32::try_from(v) {
                Ok(v) => Some(v),
                Err(_) => {
                    e.push(format!("--local-preference: {v} is more than 4294967295"));
                    None
                }
            },
        };
        let list = |v: &Option<String>, flag: &'static str| maybe(v.as_deref().map(|s| words(s, flag)), flag);
        let as_path = |flag: &'static str, v: &Option<String>| -> Field<RawAsPath> {
            match (v, &self.as_path) {
                (Some(s), _) => given(RawAsPath::Text(s.clone()), flag),
                (None, Some(s)) => given(RawAsPath::Text(s.clone()), "--as-path"),
                (None, None) => maybe(None, flag),
            }
        };
        // The attributes every state shares.
        let base =
            |med: u32, med_flag: &'static str, as_path: Field<RawAsPath>, communities: Field<Vec<At<String>>>| {
                RawAttributes {
                    med: given(med, med_flag),
                    local_preference: maybe(local_preference, "--local-preference"),
                    origin: maybe(None, "--ip"),
                    as_path,
                    communities,
                    extended_communities: list(&self.extended_community, "--extended-community"),
                    large_communities: list(&self.large_community, "--large-community"),
                }
            };
        let communities = list(&self.community, "--community");
        let up = base(self.up_metric, "--up-metric", as_path("--up-as-path", &self.up_as_path), communities.clone());
        // DEGRADED adds its communities to --community.
        let degraded_communities = match (&communities.value, &self.degraded_community) {
            (_, None) => communities.clone(),
            (c, Some(d)) => {
                let mut all = c.clone().unwrap_or_default();
                all.extend(words(d, "--degraded-community"));
                given(all, "--degraded-community")
            }
        };
        let degraded = base(
            self.degraded_metric,
            "--degraded-metric",
            as_path("--degraded-as-path", &self.degraded_as_path),
            degraded_communities,
        );
        // DOWN and DISABLED: --disabled-community replaces --community.
        let worse_communities = match &self.disabled_community {
            None => communities.clone(),
            Some(_) => list(&self.disabled_community, "--disabled-community"),
        };
        let worse = |med: u32, med_flag: &'static str, as_path: Field<RawAsPath>| {
            if self.withdraw_on_down {
                RawAction::Withdraw
            } else {
                RawAction::Announce(base(med, med_flag, as_path, worse_communities.clone()))
            }
        };
        let down = worse(self.down_metric, "--down-metric", as_path("--down-as-path", &self.down_as_path));
        let disabled =
            worse(self.disabled_metric, "--disabled-metric", as_path("--disabled-as-path", &self.disabled_as_path));
        (up, degraded, down, disabled)
    }

    /// The checks, in the order --cmd, --plugin, --tcp, --http, --dns, --ntp.
    fn raw_checks(&self) -> Vec<At<RawCheck>> {
        let mut checks = Vec::new();
        let mut check = |c: RawProbeCheck, flag: &'static str| {
            checks.push(At::new(RawCheck::Probe(Box::new(c)), Origin::Flag(flag)));
        };
        if let Some(cmd) = &self.cmd {
            check(command_check("--cmd", None, Some(cmd.clone()), ExitCodes::ZeroIsHealthy), "--cmd");
        }
        for p in &self.plugin {
            // Trailing timeout=/on-fail= are the check's; `\x20` decoded.
            let words = crate::probe::command::PluginWords::parse(p);
            let mut c = command_check("--plugin", Some(words.argv), None, ExitCodes::Nagios);
            c.timeout = maybe(words.timeout, "--plugin timeout=");
            c.on_fail = maybe(words.on_fail, "--plugin on-fail=");
            check(c, "--plugin");
        }
        let specs: [(&'static str, &Vec<String>, ProbeKind); 4] = [
            ("--tcp", &self.tcp, ProbeKind::Tcp),
            ("--http", &self.http, ProbeKind::Http),
            ("--dns", &self.dns, ProbeKind::Dns),
            ("--ntp", &self.ntp, ProbeKind::Ntp),
        ];
        for (flag, values, kind) in specs {
            for v in values {
                check(check_spec(flag, kind, v), flag);
            }
        }
        checks
    }

    fn refuse_unsupported(&self, e: &mut Vec<String>) {
        const ADDRESSES: &str = "exaprobe never adds or removes addresses: put the service addresses on lo with \
                                 your network configuration (ifupdown, systemd-networkd) and remove this flag";
        let refused: [(bool, &str, &str); 11] = [
            (self.dynamic_ip_setup, "--dynamic-ip-setup", ADDRESSES),
            (self.ip_setup, "--ip-setup", ADDRESSES),
            (self.label.is_some(), "--label", ADDRESSES),
            (self.label_exact_match, "--label-exact-match", ADDRESSES),
            (!self.ip_ifname.is_empty(), "--ip-ifname", ADDRESSES),
            (self.sudo, "--sudo", ADDRESSES),
            (
                self.syslog_facility.is_some(),
                "--syslog-facility",
                "exaprobe logs to stderr, which ExaBGP copies into its own log; use --log-target syslog (facility \
                 daemon) or journald instead of this flag",
            ),
            (!self.execute.is_empty(), "--execute", HOOKS),
            (!self.up_execute.is_empty(), "--up-execute", HOOKS),
            (!self.down_execute.is_empty(), "--down-execute", HOOKS),
            (!self.disabled_execute.is_empty(), "--disabled-execute", HOOKS),
        ];
        for (given, flag, why) in refused {
            if given {
                e.push(format!("{flag} is not supported: {why}"));
            }
        }
    }
}

const HOOKS: &str = "exaprobe runs no hooks on state changes; every transition is logged on stderr with its \
                     reason (one line each), for a log shipper to act on; remove this flag";

/// Every address of `p`, network and broadcast included, as host routes
/// (what the bundled healthcheck's `--deaggregate-networks` announces), or
/// `None` when there are more than `max`.
fn every_address(p: &Prefix, max: usize) -> Option<Vec<String>> {
    use ipnet::IpNet;
    let net = p.net();
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    if host_bits >= usize::BITS || (1usize << host_bits) > max {
        return None;
    }
    let count = 1u128 << host_bits;
    Some(match net {
        IpNet::V4(n) => {
            let first = u32::from(n.network());
            (0..count)
                .filter_map(|i| u32::try_from(i).ok())
                .map(|i| format!("{}/32", std::net::Ipv4Addr::from(first + i)))
                .collect()
        }
        IpNet::V6(n) => {
            let first = u128::from(n.network());
            (0..count).map(|i| format!("{}/128", std::net::Ipv6Addr::from(first + i))).collect()
        }
    })
}
