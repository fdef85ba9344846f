//! End-to-end tests: exaprobe run by a real ExaBGP (4.2.25 and 5.0.15) from a
//! `process` stanza, announcing to a real BGP peer (BIRD 2, RIB-only, loopback;
//! the core scenarios also against FRR's bgpd, RIB-only, loopback).
//!
//! The tests that need ExaBGP and BIRD are `#[ignore]`d; `scripts/test`
//! installs both and runs them:
//!
//! ```text
//! eval "$(scripts/install-deps)"; export EXAPROBE_EXABGP4 EXAPROBE_EXABGP5
//! cargo test --test e2e -- --ignored --test-threads=2
//! ```
//!
//! Every scenario exists once per ExaBGP version, as `<scenario>::exabgp4` and
//! `<scenario>::exabgp5` (against BIRD); the core ones (route follows the
//! service, IPv6, attributes, down-metric, degraded, kill -9, shutdown) also as
//! `<scenario>::frr_exabgp4` and `<scenario>::frr_exabgp5` (against FRR: filter
//! `frr`). Set `EXAPROBE_E2E_PROCESS=healthcheck` to run the
//! same scenarios against ExaBGP's bundled healthcheck (the reference exaprobe
//! is a drop-in for). See `tests/e2e_support/mod.rs` for the harness.

#[macro_use]
mod e2e_support;

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use std::net::{IpAddr, SocketAddr};

use e2e_support::{
    DOWN_BOUND, ExaOptions, Flavor, Harness, Listener, Route, Router, SERVICE_PORT, V4_PREFIX, Version, exabgp_config,
    exaprobe_bin, flavor_from_env, frr, parse_routes, random_phase, run_line, secs,
};
use nix::sys::signal::Signal;

const V6_PREFIX: &str = "2001:db8:0:1::1/128";
const V6_NEXT_HOP: &str = "2001:db8:ffff::1";

/// Polls `f` every 20 ms; returns when it first held, or `None` after `timeout`.
fn poll_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Instant> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(Instant::now());
        }
        if start.elapsed() > timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The probe flags shared by most scenarios: check the harness's service
/// every second (every 0.5 s while rising/falling), two results to change state.
fn fast_probe(svc: &str) -> Vec<&str> {
    vec!["--tcp", svc, "--interval", "1", "--fast-interval", "0.5", "--rise", "2", "--fall", "2", "--timeout", "1"]
}

e2e! {
    /// 1. The route is in the peer's RIB while the service is up, leaves within the
    /// detection bound after the service stops, and comes back with it.
    fn route_follows_service(v: Version, router: Router) {
        let mut h = Harness::with_router("route_follows_service", v, router);
        h.service_start();
        let svc = h.service_addr();
        let mut args = fast_probe(&svc);
        args.extend(["--ip", V4_PREFIX, "--withdraw-on-down"]);
        h.start_exabgp(&args, ExaOptions::default());

        let (_, r) = h.wait_route_up(V4_PREFIX, secs(30.0), "announced");
        assert_eq!(r.med, Some(100), "up-metric: {r:?}");
        let nh = h.default_next_hop();
        assert_eq!(r.next_hop.as_deref(), Some(nh.as_str()), "next-hop self (FRR: the harness's): {r:?}");

        for cycle in 1..=3 {
            if cycle > 1 {
                // Cycle 1 stops the service right after a successful probe (the
                // worst case); later cycles at a random point of the interval.
                thread::sleep(random_phase(secs(1.0)));
            }
            let stopped = h.service_stop();
            let gone = h.wait_route_gone(V4_PREFIX, secs(20.0));
            let d = gone - stopped;
            h.timing(&format!("service stop -> route withdrawn (cycle {cycle})"), d);
            assert!(
                d <= secs(DOWN_BOUND),
                "withdrawn {:.3} s after the service stopped; bound {DOWN_BOUND} s",
                d.as_secs_f64()
            );

            let started = h.service_start();
            let (back, r) = h.wait_route_up(V4_PREFIX, secs(20.0), "re-announced");
            h.timing(&format!("service start -> route back (cycle {cycle})"), back - started);
            assert_eq!(r.med, Some(100), "{r:?}");
        }
    }
}

e2e! {
    /// 2. An IPv6 prefix over the IPv4 BGP session, with `--next-hop6`
    /// (together with an IPv4 prefix using `next-hop self`).
    fn ipv6_route_with_next_hop6(v: Version, router: Router) {
        let mut h = Harness::with_router("ipv6_route_with_next_hop6", v, router);
        h.service_start();
        let svc = h.service_addr();
        let mut args = fast_probe(&svc);
        args.push("--withdraw-on-down");
        let healthcheck = h.flavor() == Flavor::Healthcheck;
        if healthcheck {
            // The reference has a single --next-hop for every prefix.
            args.extend(["--ip", V6_PREFIX, "--next-hop", V6_NEXT_HOP]);
        } else {
            args.extend(["--ip", V4_PREFIX, "--ip", V6_PREFIX, "--next-hop6", V6_NEXT_HOP]);
        }
        h.start_exabgp(&args, ExaOptions::default());

        let (_, r6) = h.wait_route(V6_PREFIX, secs(30.0), "announced", |_| true);
        let nh6 = r6.next_hop.clone().unwrap_or_default();
        assert!(
            nh6.split_whitespace().next() == Some(V6_NEXT_HOP),
            "IPv6 next hop should be {V6_NEXT_HOP}: {r6:?}"
        );
        if !healthcheck {
            let (_, r4) = h.wait_route_up(V4_PREFIX, secs(10.0), "announced");
            let nh = h.default_next_hop();
            assert_eq!(r4.next_hop.as_deref(), Some(nh.as_str()), "{r4:?}");
            assert_eq!(r4.med, Some(100), "first prefix gets the up-metric: {r4:?}");
            assert_eq!(r6.med, Some(101), "second prefix gets up-metric + increase: {r6:?}");
        }

        let stopped = h.service_stop();
        let gone = h.wait_route_gone(V6_PREFIX, secs(20.0));
        h.timing("service stop -> IPv6 route withdrawn", gone - stopped);
        assert!(gone - stopped <= secs(DOWN_BOUND), "IPv6 withdraw too slow");
        if !healthcheck {
            h.wait_route_gone(V4_PREFIX, secs(5.0));
        }

        h.service_start();
        h.wait_route(V6_PREFIX, secs(20.0), "re-announced", |r| {
            r.next_hop.as_deref().unwrap_or_default().starts_with(V6_NEXT_HOP)
        });
    }
}

e2e! {
    /// 3. Without `--withdraw-on-down`, a dead service is announced with the
    /// down-metric (MED 1000), and gets MED 100 again when it recovers.
    fn down_announces_down_metric(v: Version, router: Router) {
        let mut h = Harness::with_router("down_announces_down_metric", v, router);
        h.service_start();
        let svc = h.service_addr();
        let mut args = fast_probe(&svc);
        args.extend(["--ip", V4_PREFIX]);
        h.start_exabgp(&args, ExaOptions::default());

        h.wait_route(V4_PREFIX, secs(30.0), "announced with MED 100", |r| r.med == Some(100));
        let stopped = h.service_stop();
        let (down, _) =
            h.wait_route(V4_PREFIX, secs(20.0), "MED 1000 (down)", |r| r.med == Some(1000));
        h.timing("service stop -> MED 1000", down - stopped);
        assert!(down - stopped <= secs(DOWN_BOUND), "DOWN detected too slowly");

        let started = h.service_start();
        let (up, _) = h.wait_route(V4_PREFIX, secs(20.0), "MED 100 again", |r| r.med == Some(100));
        h.timing("service start -> MED 100", up - started);
    }
}

e2e! {
    /// 4. Crash safety: exaprobe is killed with SIGKILL just as the service
    /// dies. ExaBGP keeps the old instance's route and respawns exaprobe; the
    /// new instance finds the service down on its first probe and must
    /// withdraw the stale route at once (long interval, so the old instance
    /// could never have done it).
    fn kill9_respawn_withdraws_stale_route(v: Version, router: Router) {
        let mut h = Harness::with_router("kill9_respawn_withdraws_stale_route", v, router);
        h.service_start();
        let svc = h.service_addr();
        let args = [
            "--tcp", &svc, "--ip", V4_PREFIX, "--interval", "5", "--fast-interval", "0.5",
            "--rise", "2", "--fall", "3", "--timeout", "1", "--withdraw-on-down",
        ];
        h.start_exabgp(&args, ExaOptions::default());
        h.wait_route_up(V4_PREFIX, secs(30.0), "announced");
        let old = h.wait_probe_process(secs(10.0), None);

        h.service_stop();
        let killed = h.signal_probe(old, Signal::SIGKILL);
        let new = h.wait_probe_process(secs(10.0), Some(old));
        assert!(!old.alive(), "the killed instance is still running");
        let gone = h.wait_route_gone(V4_PREFIX, secs(20.0));
        h.timing("kill -9 -> stale route withdrawn by the respawned instance", gone - killed);
        // exaprobe asserts a failure at once on a fresh start: respawn plus one
        // probe. The reference healthcheck needs `fall` probes (about 1 s here).
        let bound = if h.flavor() == Flavor::Exaprobe { 1.0 } else { 4.0 };
        assert!(
            gone - killed <= secs(bound),
            "the respawned instance took {:.3} s to withdraw the stale route (bound {bound} s)",
            (gone - killed).as_secs_f64()
        );
        assert!(new.alive(), "the respawned instance died");

        let started = h.service_start();
        let (back, _) = h.wait_route_up(V4_PREFIX, secs(20.0), "re-announced");
        h.timing("service start -> route back (respawned instance)", back - started);
        assert_eq!(h.probe_process(), Some(new), "the API process changed again");
        let log = h.exabgp_log();
        assert!(!log.contains("Too many death"), "ExaBGP hit its respawn limit");
    }
}

e2e! {
    /// 5. SIGTERM to ExaBGP: exaprobe exits promptly, ExaBGP exits, and no
    /// process started for this test remains.
    fn exabgp_shutdown_stops_exaprobe(v: Version, router: Router) {
        let mut h = Harness::with_router("exabgp_shutdown_stops_exaprobe", v, router);
        h.service_start();
        let svc = h.service_addr();
        let mut args = fast_probe(&svc);
        args.extend(["--ip", V4_PREFIX, "--withdraw-on-down"]);
        h.start_exabgp(&args, ExaOptions::default());
        h.wait_route_up(V4_PREFIX, secs(30.0), "announced");
        let probe = h.wait_probe_process(secs(10.0), None);

        let term = h.sigterm_exabgp();
        let probe_gone = poll_until(secs(5.0), || !probe.alive());
        let Some(probe_gone) = probe_gone else {
            panic!("the API process (pid {}) still runs 5 s after ExaBGP's SIGTERM", probe.pid);
        };
        h.timing("SIGTERM to ExaBGP -> exaprobe gone", probe_gone - term);
        let (exited, status) = h.wait_exabgp_exit(secs(15.0));
        h.timing("SIGTERM to ExaBGP -> ExaBGP exited", exited - term);
        h.note(&format!("ExaBGP exit status: {status}"));

        let clean = poll_until(secs(5.0), || h.marked_processes().is_empty());
        assert!(
            clean.is_some(),
            "processes of this test remain after ExaBGP exited: {:?}",
            h.marked_processes()
        );
        h.wait_route_gone(V4_PREFIX, secs(10.0));
    }
}

e2e! {
    /// 6. SIGTERM to exaprobe itself (process stanza with `respawn false`):
    /// it withdraws its routes, even without `--withdraw-on-down`, and exits.
    fn sigterm_withdraws_routes(v: Version) {
        let mut h = Harness::new("sigterm_withdraws_routes", v);
        h.service_start();
        let svc = h.service_addr();
        let mut args = fast_probe(&svc);
        args.extend(["--ip", V4_PREFIX]);
        h.start_exabgp(&args, ExaOptions { respawn: false, ..ExaOptions::default() });
        h.wait_route_up(V4_PREFIX, secs(30.0), "announced");
        let probe = h.wait_probe_process(secs(10.0), None);

        let term = h.signal_probe(probe, Signal::SIGTERM);
        let gone = h.wait_route_gone(V4_PREFIX, secs(5.0));
        h.timing("SIGTERM to exaprobe -> route withdrawn", gone - term);
        let exited = poll_until(secs(5.0), || !probe.alive());
        assert!(exited.is_some(), "exaprobe still runs 5 s after SIGTERM");
        assert!(h.session_established(), "the BGP session should stay up");
    }
}

e2e! {
    /// 7. With `exabgp.api.ack=false` and `--no-ack`, state changes still reach
    /// the peer (nothing waits for acks that never come).
    fn no_ack_mode(v: Version) {
        let mut h = Harness::new("no_ack_mode", v);
        h.service_start();
        let svc = h.service_addr();
        let mut args = fast_probe(&svc);
        args.extend(["--ip", V4_PREFIX, "--withdraw-on-down", "--no-ack"]);
        h.start_exabgp(&args, ExaOptions { ack: false, ..ExaOptions::default() });
        h.wait_route_up(V4_PREFIX, secs(30.0), "announced");
        for _ in 0..2 {
            let stopped = h.service_stop();
            let gone = h.wait_route_gone(V4_PREFIX, secs(20.0));
            h.timing("no-ack: service stop -> route withdrawn", gone - stopped);
            h.service_start();
            h.wait_route_up(V4_PREFIX, secs(20.0), "re-announced");
        }
    }
}

e2e! {
    /// 8. `--community`, `--as-path` (values with spaces, double-quoted on
    /// the run line) and `--next-hop` reach the peer; `--local-preference`
    /// does not count on an eBGP session (RFC 4271 5.1.5: the receiver ignores
    /// it), so the peer shows its default, 100 (FRR: no LOCAL_PREF at all).
    fn attributes_reach_peer(v: Version, router: Router) {
        let mut h = Harness::with_router("attributes_reach_peer", v, router);
        h.service_start();
        let svc = h.service_addr();
        let mut args = fast_probe(&svc);
        args.extend([
            "--ip", V4_PREFIX, "--community", "65000:1 65000:2", "--as-path", "65010 65020",
            "--next-hop", "198.51.100.254", "--up-metric", "42", "--local-preference", "200",
        ]);
        h.start_exabgp(&args, ExaOptions::default());
        let (_, r) = h.wait_route(V4_PREFIX, secs(30.0), "announced", |_| true);
        assert_eq!(r.med, Some(42), "{r:?}");
        assert_eq!(r.next_hop.as_deref(), Some("198.51.100.254"), "{r:?}");
        assert_eq!(r.community.as_deref(), Some("(65000,1) (65000,2)"), "{r:?}");
        let path = r.as_path.clone().unwrap_or_default();
        // ExaBGP sends the path as given: it does not put its own AS (65001)
        // in front when the API names an as-path (README: prepending).
        assert_eq!(path, "65010 65020", "as-path: {r:?}");
        let default_pref = match router {
            Router::Bird => Some(100),
            Router::Frr => None,
        };
        assert_eq!(r.local_pref, default_pref, "eBGP: the speaker's local-pref must not count: {r:?}");
    }
}

e2e! {
    frr_only;
    /// 8b. DEGRADED as FRR sees it (against BIRD: `e2e_ops`'s
    /// `degraded_med_and_community`): while a soft check (`on-fail=degrade`)
    /// fails, the route stays with the degraded MED and an added community,
    /// and gets MED 100 without it back when the check recovers.
    fn degraded_attributes(v: Version, router: Router) {
        if flavor_from_env() == Flavor::Healthcheck {
            eprintln!("degraded_attributes: skipped with EXAPROBE_E2E_PROCESS=healthcheck (an exaprobe feature)");
            return;
        }
        let mut h = Harness::with_router("degraded_attributes", v, router);
        h.service_start();
        let hard = h.service_addr();
        let mut soft = Listener::start(SocketAddr::new(IpAddr::V4(h.host_addr(4)), SERVICE_PORT));
        let soft_spec = format!("{} on-fail=degrade", soft.addr());
        let mut args = vec!["--tcp", &hard, "--tcp", &soft_spec];
        args.extend(fast_probe(&hard).into_iter().skip(2));
        args.extend([
            "--ip", V4_PREFIX, "--withdraw-on-down", "--community", "65000:1", "--degraded-metric", "300",
            "--degraded-community", "65000:666",
        ]);
        h.start_exabgp(&args, ExaOptions::default());
        let (_, r) = h.wait_route_up(V4_PREFIX, secs(30.0), "announced");
        assert_eq!(r.community.as_deref(), Some("(65000,1)"), "UP: the service's community only: {r:?}");

        let stopped = soft.stop();
        h.note("soft listener stopped");
        let (at, r) = h.wait_for("MED 300 + (65000,666) (soft check down)", secs(20.0), |h| {
            let r = h.route(V4_PREFIX);
            assert!(r.is_some(), "{V4_PREFIX} left the RIB although the service is only degraded");
            r.filter(|r| r.med == Some(300))
        });
        h.note(&format!("seen degraded: {r:?}"));
        h.timing("soft check down -> MED 300 + 65000:666", at - stopped);
        assert!(at - stopped <= secs(DOWN_BOUND), "DEGRADED took {:.3} s", (at - stopped).as_secs_f64());
        assert_eq!(r.community.as_deref(), Some("(65000,1) (65000,666)"), "DEGRADED adds its community: {r:?}");
        assert_eq!(r.next_hop.as_deref(), Some(h.default_next_hop().as_str()), "{r:?}");

        let started = soft.restart();
        h.note("soft listener back");
        let (at, r) = h.wait_route(V4_PREFIX, secs(20.0), "MED 100 again", |r| r.med == Some(100));
        h.timing("soft check back -> MED 100", at - started);
        assert_eq!(r.community.as_deref(), Some("(65000,1)"), "UP again: the degraded community is gone: {r:?}");
    }
}

e2e! {
    /// 9. `--disable FILE`: while the file exists the service is DISABLED and
    /// announced with the disabled-metric (500); removing it brings MED 100 back.
    fn disable_file(v: Version) {
        let mut h = Harness::new("disable_file", v);
        h.service_start();
        let svc = h.service_addr();
        let flag = h.file("maintenance");
        let flag_arg = flag.display().to_string();
        let mut args = fast_probe(&svc);
        args.extend(["--ip", V4_PREFIX, "--disable", &flag_arg]);
        h.start_exabgp(&args, ExaOptions::default());
        h.wait_route(V4_PREFIX, secs(30.0), "MED 100", |r| r.med == Some(100));

        fs::write(&flag, "").expect("create the disable file");
        let disabled = Instant::now();
        h.note("disable file created");
        let (at, _) = h.wait_route(V4_PREFIX, secs(20.0), "MED 500 (disabled)", |r| r.med == Some(500));
        h.timing("disable file created -> MED 500", at - disabled);
        assert!(at - disabled <= secs(1.0 + 2.0), "DISABLED should follow within an interval");

        fs::remove_file(&flag).expect("remove the disable file");
        let enabled = Instant::now();
        h.note("disable file removed");
        let (at, _) = h.wait_route(V4_PREFIX, secs(20.0), "MED 100 again", |r| r.med == Some(100));
        h.timing("disable file removed -> MED 100", at - enabled);
    }
}

e2e! {
    /// 10. `--cmd` (a shell command, double-quoted on the run line, run
    /// with ExaBGP's environment and working directory): the route follows
    /// the command's exit status.
    fn command_probe(v: Version) {
        let mut h = Harness::new("command_probe", v);
        let healthy = h.file("healthy");
        fs::write(&healthy, "").expect("create the health file");
        let cmd = format!("test -e {}", healthy.display());
        let args = [
            "--cmd", &cmd, "--ip", V4_PREFIX, "--interval", "1", "--fast-interval", "0.5", "--rise", "2",
            "--fall", "2", "--timeout", "1", "--withdraw-on-down",
        ];
        h.start_exabgp(&args, ExaOptions::default());
        h.wait_route_up(V4_PREFIX, secs(30.0), "announced");

        fs::remove_file(&healthy).expect("remove the health file");
        let failing = Instant::now();
        h.note("health file removed");
        let gone = h.wait_route_gone(V4_PREFIX, secs(20.0));
        h.timing("command starts failing -> route withdrawn", gone - failing);
        assert!(gone - failing <= secs(DOWN_BOUND), "withdraw too slow");

        fs::write(&healthy, "").expect("create the health file");
        let passing = Instant::now();
        h.note("health file created");
        let (back, _) = h.wait_route_up(V4_PREFIX, secs(20.0), "re-announced");
        h.timing("command passes again -> route back", back - passing);
    }
}

e2e! {
    /// 11. `--neighbor IP`: the commands are addressed to that neighbor only
    /// (a selector both ExaBGP versions must accept).
    fn neighbor_selector(v: Version) {
        let mut h = Harness::new("neighbor_selector", v);
        h.service_start();
        let svc = h.service_addr();
        let peer = h.router_addr().to_string();
        let mut args = fast_probe(&svc);
        args.extend(["--ip", V4_PREFIX, "--neighbor", &peer, "--withdraw-on-down"]);
        h.start_exabgp(&args, ExaOptions::default());
        h.wait_route_up(V4_PREFIX, secs(30.0), "announced via --neighbor");
        let stopped = h.service_stop();
        let gone = h.wait_route_gone(V4_PREFIX, secs(20.0));
        h.timing("--neighbor: service stop -> route withdrawn", gone - stopped);
    }
}

e2e! {
    /// The example configs in `exabgp-conf/` are accepted by their ExaBGP
    /// version (`/usr/bin/exaprobe` replaced by the freshly built binary, since
    /// ExaBGP checks the program when it parses the config).
    fn example_config_validates(v: Version) {
        let name = match v {
            Version::V4 => "exabgp-4.2.conf",
            Version::V5 => "exabgp-5.0.conf",
        };
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/exabgp-conf/").to_owned() + name;
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(text.contains("run /usr/bin/exaprobe "), "{path} should run /usr/bin/exaprobe");
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join(name);
        let bin = exaprobe_bin().display().to_string();
        fs::write(&conf, text.replace("/usr/bin/exaprobe", &bin)).expect("write config");
        let out = v.validate_command(&conf).output().expect("run exabgp");
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name} rejected by {}:\n{log}", v.label());
        assert!(!log.to_lowercase().contains("error"), "{name}: {log}");
    }
}

// ---------------------------------------------------------------------------
// Harness self-tests (no ExaBGP or BIRD needed; part of the normal suite).

#[test]
fn parses_birdc_show_route_all() {
    let text = "BIRD 2.0.12 ready.\n\
        Table master4:\n\
        198.51.100.1/32      unreachable [exa 03:43:34.961 from 127.66.1.2] * (100) [AS65001i]\n\
        \tType: BGP univ\n\
        \tBGP.origin: IGP\n\
        \tBGP.as_path: 65010 65020\n\
        \tBGP.next_hop: 127.66.1.2\n\
        \tBGP.med: 100\n\
        \tBGP.local_pref: 100\n\
        \tBGP.community: (65000,1) (65000,2)\n\
        \x20                    unreachable [siteB 03:11:13.145 from 127.0.10.3] (100) [AS65001i]\n\
        \tType: BGP univ\n\
        \tBGP.next_hop: 127.0.10.3\n\
        \tBGP.med: 200\n\
        \n\
        Table master6:\n\
        2001:db8:0:1::1/128  unreachable [exa 03:43:35.001 from 127.66.1.2] * (100) [AS65001i]\n\
        \tType: BGP univ\n\
        \tBGP.next_hop: 2001:db8:ffff::1 fe80::1\n\
        \tBGP.med: 101\n";
    let routes = parse_routes(text);
    assert_eq!(
        routes,
        vec![
            Route {
                prefix: "198.51.100.1/32".into(),
                protocol: "exa".into(),
                best: true,
                next_hop: Some("127.66.1.2".into()),
                med: Some(100),
                local_pref: Some(100),
                as_path: Some("65010 65020".into()),
                community: Some("(65000,1) (65000,2)".into()),
            },
            Route {
                prefix: "198.51.100.1/32".into(),
                protocol: "siteB".into(),
                best: false,
                next_hop: Some("127.0.10.3".into()),
                med: Some(200),
                ..Route::default()
            },
            Route {
                prefix: "2001:db8:0:1::1/128".into(),
                protocol: "exa".into(),
                best: true,
                next_hop: Some("2001:db8:ffff::1 fe80::1".into()),
                med: Some(101),
                ..Route::default()
            },
        ]
    );
    assert!(parse_routes("BIRD 2.0.12 ready.\nNetwork not found\n").is_empty());
}

#[test]
fn parses_frr_json_detail() {
    // FRR 8.4.4: `show bgp ipv4 unicast json detail` then the ipv6 one, as run
    // by the harness (two JSON documents), trimmed to the fields that matter.
    let text = r#"{
 "vrfId": 0, "routerId": "127.77.1.1", "defaultLocPrf": 100, "localAS": 65000,
 "routes": { "198.51.100.2/32": [{"prefix":"198.51.100.2/32","version":2,"advertisedTo":{"127.77.1.2":{}}},
   {"aspath":{"string":"65010 65020","segments":[{"type":"as-sequence","list":[65010,65020]}],"length":2},
    "origin":"IGP","metric":42,"valid":true,"version":2,
    "bestpath":{"overall":true,"selectionReason":"First path received"},
    "community":{"string":"65000:1 graceful-shutdown","list":["65000:1","graceful-shutdown"]},
    "nexthops":[{"ip":"198.51.100.254","afi":"ipv4","metric":0,"accessible":true,"used":true}],
    "peer":{"peerId":"127.77.1.2","routerId":"127.77.1.2","type":"external"}}]
 }  }
{
 "vrfId": 0, "routerId": "127.77.1.1", "defaultLocPrf": 100, "localAS": 65000,
 "routes": { "2001:db8:0:1::1/128": [{"prefix":"2001:db8:0:1::1/128","version":1},
   {"aspath":{"string":"65001"},"metric":101,"localpref":100,"bestpath":{"overall":true},
    "nexthops":[{"ip":"2001:db8:ffff::1","afi":"ipv6","scope":"global","used":true}],
    "peer":{"peerId":"127.77.1.2"}},
   {"aspath":{"string":"65001"},"metric":200,
    "nexthops":[{"ip":"2001:db8:ffff::2","afi":"ipv6","scope":"global"},{"ip":"fe80::1","afi":"ipv6","scope":"link-local"}],
    "peer":{"peerId":"127.77.1.3"}}]
 }  }
"#;
    let routes = frr::parse_routes(text).expect("FRR JSON");
    assert_eq!(
        routes,
        vec![
            Route {
                prefix: "198.51.100.2/32".into(),
                protocol: "127.77.1.2".into(),
                best: true,
                next_hop: Some("198.51.100.254".into()),
                med: Some(42),
                local_pref: None,
                as_path: Some("65010 65020".into()),
                community: Some("(65000,1) (65535,0)".into()),
            },
            Route {
                prefix: "2001:db8:0:1::1/128".into(),
                protocol: "127.77.1.2".into(),
                best: true,
                next_hop: Some("2001:db8:ffff::1".into()),
                med: Some(101),
                local_pref: Some(100),
                as_path: Some("65001".into()),
                community: None,
            },
            Route {
                prefix: "2001:db8:0:1::1/128".into(),
                protocol: "127.77.1.3".into(),
                best: false,
                next_hop: Some("2001:db8:ffff::2 fe80::1".into()),
                med: Some(200),
                local_pref: None,
                as_path: Some("65001".into()),
                community: None,
            },
        ]
    );
    let empty = "{\n \"vrfId\": 0,\n \"routes\": {  }  } \n{\n \"vrfId\": 0,\n \"routes\": {  }  } \n";
    assert_eq!(frr::parse_routes(empty), Ok(Vec::new()));
    assert!(frr::parse_routes("% Unknown command: show bgp\n").is_err());
    let neighbor = r#"{"127.77.1.2":{"remoteAs":65001,"bgpState":"Established","bgpTimerUpMsec":1200}}"#;
    assert!(frr::is_established(neighbor, "127.77.1.2".parse().expect("ip")));
    assert!(!frr::is_established(&neighbor.replace("Established", "Active"), "127.77.1.2".parse().expect("ip")));
}

#[test]
fn frr_config_is_rib_only_and_loopback_bound() {
    let conf = frr::config("t", "127.1.2.1".parse().expect("ip"), "127.1.2.2".parse().expect("ip"));
    for needle in [
        "router bgp 65000",
        "bgp router-id 127.1.2.1",
        "neighbor 127.1.2.2 remote-as 65001",
        "neighbor 127.1.2.2 passive",
        "neighbor 127.1.2.2 route-map IMPORT-ALL in",
        "neighbor 127.1.2.2 route-map EXPORT-NONE out",
        "address-family ipv6 unicast",
    ] {
        assert!(conf.contains(needle), "missing {needle:?} in:\n{conf}");
    }
    // Nothing that would make bgpd listen elsewhere or talk to zebra.
    for banned in ["192.0.2.", "fd00:", "zebra", "redistribute", "network "] {
        assert!(
            !conf.lines().filter(|l| !l.trim_start().starts_with('!')).any(|l| l.contains(banned)),
            "{banned:?} in:\n{conf}"
        );
    }
}

#[test]
fn run_line_quotes_arguments_with_spaces() {
    let argv = ["/usr/bin/exaprobe", "--community", "65000:1 65000:2", "--ip", "198.51.100.1/32"].map(String::from);
    assert_eq!(run_line(&argv), "/usr/bin/exaprobe --community \"65000:1 65000:2\" --ip 198.51.100.1/32");
}

#[test]
fn generated_exabgp_config_links_process_and_neighbor() {
    let conf = exabgp_config(
        "t",
        "/usr/bin/exaprobe --tcp 127.0.0.1:80",
        false,
        "127.1.2.1".parse().expect("ip"),
        "127.1.2.2".parse().expect("ip"),
    );
    for needle in [
        "run /usr/bin/exaprobe --tcp 127.0.0.1:80;",
        "encoder text;",
        "respawn false;",
        "neighbor 127.1.2.1 {",
        "local-address 127.1.2.2;",
        "processes [ probe ];",
        "ipv6 unicast;",
    ] {
        assert!(conf.contains(needle), "missing {needle:?} in:\n{conf}");
    }
}

#[test]
fn example_configs_run_exaprobe_and_link_the_neighbor() {
    for name in ["exabgp-4.2.conf", "exabgp-5.0.conf"] {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/exabgp-conf/").to_owned() + name;
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(text.contains("run /usr/bin/exaprobe "), "{name}");
        assert!(text.contains("processes [ "), "{name} must list the process in api");
        assert!(text.contains("encoder text;"), "{name}");
        assert!(!text.contains("192.0.2."), "{name} must not use the hosts' own network");
    }
}
